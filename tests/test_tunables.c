/*
 * test_tunables.c - the tunable parsers and table (no MPI).
 *
 * Usage: test_tunables                 parsers, table, loading good values
 *        test_tunables --bad-env VAR   expects the environment (set by the
 *                                      caller) to hold a malformed VAR: loading
 *                                      must fail with CHORUS_INVALID_ARGUMENT
 *                                      and a last error naming VAR.
 * Prints "ok test_tunables: N checks" or "FAIL test_tunables: N failures".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus.h"
#include "tunables.h"

static long checks, fails;

#define CHECK(cond, ...)                                        \
    do {                                                        \
        checks++;                                               \
        if (!(cond)) {                                          \
            fails++;                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);         \
            printf(__VA_ARGS__);                                \
            printf("\n");                                       \
        }                                                       \
    } while (0)

static void size_ok(const char *text, size_t want)
{
    size_t v = 12345;
    int r = chorus_parse_size(text, &v);
    CHECK(r == 0 && v == want, "chorus_parse_size(\"%s\") = %d, %zu; expected 0, %zu", text, r,
          v, want);
}

static void size_bad(const char *text)
{
    size_t v = 12345;
    int r = chorus_parse_size(text, &v);
    CHECK(r == -1, "chorus_parse_size(\"%s\") = %d (value %zu); expected -1", text, r, v);
}

static void int_ok(const char *text, long want)
{
    long v = 12345;
    int r = chorus_parse_int(text, &v);
    CHECK(r == 0 && v == want, "chorus_parse_int(\"%s\") = %d, %ld; expected 0, %ld", text, r, v,
          want);
}

static void int_bad(const char *text)
{
    long v = 12345;
    int r = chorus_parse_int(text, &v);
    CHECK(r == -1, "chorus_parse_int(\"%s\") = %d (value %ld); expected -1", text, r, v);
}

static void bool_ok(const char *text, int want)
{
    int v = 12345;
    int r = chorus_parse_bool(text, &v);
    CHECK(r == 0 && v == want, "chorus_parse_bool(\"%s\") = %d, %d; expected 0, %d", text, r, v,
          want);
}

static void bool_bad(const char *text)
{
    int v = 12345;
    int r = chorus_parse_bool(text, &v);
    CHECK(r == -1, "chorus_parse_bool(\"%s\") = %d (value %d); expected -1", text, r, v);
}

static void test_size(void)
{
    size_ok("0", 0);
    size_ok("1", 1);
    size_ok("4096", 4096);
    size_ok("1048577", 1048577);
    size_ok("1K", 1024);
    size_ok("1k", 1024);
    size_ok("64K", 65536);
    size_ok("1M", (size_t)1 << 20);
    size_ok("3m", (size_t)3 << 20);
    size_ok("2G", (size_t)2 << 30);
    size_ok("1g", (size_t)1 << 30);
    size_ok("1KiB", 1024);
    size_ok("16KiB", 16384);
    size_ok("3MiB", (size_t)3 << 20);
    size_ok("1GiB", (size_t)1 << 30);
    size_ok("0K", 0);
    size_ok("007", 7);
    if (sizeof(size_t) == 8) {
        size_ok("18446744073709551615", SIZE_MAX);
        size_ok("17179869183G", ((size_t)17179869183u) << 30);
        size_ok("8589934592G", (size_t)1 << 63);
        /* overflow */
        size_bad("18446744073709551616");
        size_bad("99999999999999999999999999");
        size_bad("17179869184G"); /* 2^64 */
        size_bad("18014398509481984K");
        size_bad("17592186044416M");
    }
    /* negative */
    size_bad("-1");
    size_bad("-0");
    size_bad("-1K");
    size_bad("-4096");
    /* garbage */
    size_bad("abc");
    size_bad("12abc");
    size_bad("1X");
    size_bad("K");
    size_bad("KiB");
    size_bad("1.5M");
    size_bad("0x10");
    size_bad("1KK");
    size_bad("1KiBx");
    size_bad("1M1");
    size_bad("one");
    /* empty */
    size_bad("");
    size_bad(" ");
}

static void test_int(void)
{
    int_ok("0", 0);
    int_ok("42", 42);
    int_ok("-42", -42);
    int_ok("-1", -1);
    int_ok("300000", 300000);
    int_ok("2147483648", 2147483648L);
    if (sizeof(long) == 8) {
        int_ok("9223372036854775807", LONG_MAX);
        int_ok("-9223372036854775808", LONG_MIN);
        int_bad("9223372036854775808");
        int_bad("-9223372036854775809");
        int_bad("99999999999999999999999");
    }
    int_bad("abc");
    int_bad("12abc");
    int_bad("1.5");
    int_bad("0x10");
    int_bad("1K");
    int_bad("--1");
    int_bad("-");
    int_bad("");
    int_bad(" ");
}

static void test_bool(void)
{
    static const char *yes[] = {"1", "yes", "true", "on", "YES", "True", "ON", "Yes"};
    static const char *no[] = {"0", "no", "false", "off", "NO", "False", "OFF", "No"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        bool_ok(yes[i], 1);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        bool_ok(no[i], 0);
    bool_bad("");
    bool_bad("2");
    bool_bad("-1");
    bool_bad("10");
    bool_bad("maybe");
    bool_bad("yess");
    bool_bad("tru");
    bool_bad("offf");
    bool_bad("1yes");
}

static void test_table(void)
{
    size_t n = chorus_tunable_count();
    CHECK(n > 0, "chorus_tunable_count() = 0");
    CHECK(chorus_tunable_get(n) == NULL, "chorus_tunable_get(count) is not NULL");
    int seen_chunk = 0, seen_timeout = 0;
    for (size_t i = 0; i < n; i++) {
        const struct chorus_tunable_desc *d = chorus_tunable_get(i);
        CHECK(d != NULL, "chorus_tunable_get(%zu) is NULL", i);
        if (!d)
            continue;
        CHECK(d->name && *d->name, "tunable %zu has no name", i);
        CHECK(d->help && *d->help, "tunable %zu has no help", i);
        CHECK(d->default_text != NULL, "tunable %zu has no default text", i);
        CHECK(d->name && strncmp(d->name, "CHORUS_", 7) != 0,
              "tunable %zu name \"%s\" should not carry the CHORUS_ prefix", i, d->name);
        if (d->name && !strcmp(d->name, "SHM_CHUNK"))
            seen_chunk = d->kind == CHORUS_TUNABLE_SIZE;
        if (d->name && !strcmp(d->name, "TIMEOUT_MS"))
            seen_timeout = d->kind == CHORUS_TUNABLE_INT;
        /* default texts of numeric kinds parse with their own parser */
        if (d->default_text && d->kind == CHORUS_TUNABLE_SIZE) {
            size_t v;
            CHECK(chorus_parse_size(d->default_text, &v) == 0,
                  "default \"%s\" of %s does not parse as a size", d->default_text, d->name);
        }
        if (d->default_text && d->kind == CHORUS_TUNABLE_INT) {
            long v;
            CHECK(chorus_parse_int(d->default_text, &v) == 0,
                  "default \"%s\" of %s does not parse as an int", d->default_text, d->name);
        }
    }
    CHECK(seen_chunk, "SHM_CHUNK (SIZE) is not in the table");
    CHECK(seen_timeout, "TIMEOUT_MS (INT) is not in the table");
}

/* Values from the environment land in the table. */
static void test_load(void)
{
    setenv("CHORUS_SHM_CHUNK", "2M", 1);
    setenv("CHORUS_SHM_SMALL", "8KiB", 1);
    setenv("CHORUS_TIMEOUT_MS", "-5", 1);
    setenv("CHORUS_YIELD_US", "77", 1);
    setenv("CHORUS_LOG_LEVEL", "warn", 1);
    const struct chorus_tunables *t = NULL;
    chorus_result_t r = chorus_tunables_load(&t);
    CHECK(r == CHORUS_SUCCESS, "chorus_tunables_load with good values: %d (%s)", (int)r,
          chorus_get_last_error());
    CHECK(t != NULL, "chorus_tunables_load did not set *out");
    if (r == CHORUS_SUCCESS && t) {
        CHECK(t->SHM_CHUNK == ((size_t)2 << 20), "SHM_CHUNK = %zu, expected 2M", t->SHM_CHUNK);
        CHECK(t->SHM_SMALL == 8192, "SHM_SMALL = %zu, expected 8192", t->SHM_SMALL);
        CHECK(t->TIMEOUT_MS == -5, "TIMEOUT_MS = %ld, expected -5", t->TIMEOUT_MS);
        CHECK(t->YIELD_US == 77, "YIELD_US = %ld, expected 77", t->YIELD_US);
        CHECK(t->INIT_TIMEOUT_MS == 120000 || getenv("CHORUS_INIT_TIMEOUT_MS"),
              "INIT_TIMEOUT_MS = %ld, expected the default 120000", t->INIT_TIMEOUT_MS);
        CHECK(chorus_tunables() == t, "chorus_tunables() differs from the loaded table");
    }
    /* loaded once: later changes are not seen */
    setenv("CHORUS_SHM_CHUNK", "abc", 1);
    r = chorus_tunables_load(&t);
    CHECK(r == CHORUS_SUCCESS && t && t->SHM_CHUNK == ((size_t)2 << 20),
          "second chorus_tunables_load re-read the environment (%d)", (int)r);
}

static int bad_env(const char *var)
{
    const struct chorus_tunables *t = NULL;
    chorus_result_t r = chorus_tunables_load(&t);
    const char *le = chorus_get_last_error();
    CHECK(r == CHORUS_INVALID_ARGUMENT, "%s='%s': chorus_tunables_load returned %d, expected "
                                        "CHORUS_INVALID_ARGUMENT (%d)",
          var, getenv(var) ? getenv(var) : "(unset)", (int)r, (int)CHORUS_INVALID_ARGUMENT);
    CHECK(le && strstr(le, var), "last error \"%s\" does not name %s", le ? le : "(NULL)", var);
    CHECK(chorus_tunables() != NULL, "chorus_tunables() is NULL after a failed load");
    if (fails)
        printf("FAIL test_tunables --bad-env %s: %ld failures\n", var, fails);
    else
        printf("ok test_tunables --bad-env %s: %ld checks\n", var, checks);
    return fails ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--bad-env"))
        return bad_env(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: test_tunables [--bad-env VAR]\n");
        return 2;
    }
    test_size();
    test_int();
    test_bool();
    test_table();
    test_load();
    if (fails) {
        printf("FAIL test_tunables: %ld failures (of %ld checks)\n", fails, checks);
        return 1;
    }
    printf("ok test_tunables: %ld checks\n", checks);
    return 0;
}
