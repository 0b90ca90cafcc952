/* tunables.c - reads CHORUS_* environment variables into one typed table. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "tunables.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"

#define STR_OF(x) #x

static const struct chorus_tunable_desc descs[] = {
#define CHORUS_TUNABLE(name, kind, def, help) \
    {#name, CHORUS_TUNABLE_##kind, STR_OF(def), help},
#include "tunables.def"
#undef CHORUS_TUNABLE
};

static struct chorus_tunables values = {
#define CHORUS_TUNABLE(name, kind, def, help) .name = def,
#include "tunables.def"
#undef CHORUS_TUNABLE
};

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static chorus_result_t load_result;
static char load_error[256];

size_t chorus_tunable_count(void) { return sizeof descs / sizeof descs[0]; }

const struct chorus_tunable_desc *chorus_tunable_get(size_t i)
{
    return i < chorus_tunable_count() ? &descs[i] : NULL;
}

int chorus_parse_int(const char *text, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return -1;
    *out = v;
    return 0;
}

int chorus_parse_size(const char *text, size_t *out)
{
    char *end;
    while (isspace((unsigned char)*text))
        text++;
    if (*text == '-' || !isdigit((unsigned char)*text))
        return -1;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    default: break;
    }
    if (shift && (*end == 'i' || *end == 'I'))
        end++;
    if (shift && (*end == 'b' || *end == 'B'))
        end++;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return -1;
    if (shift && v > (SIZE_MAX >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

int chorus_parse_bool(const char *text, int *out)
{
    static const char *yes[] = {"1", "yes", "true", "on", "y"};
    static const char *no[] = {"0", "no", "false", "off", "n"};
    for (size_t i = 0; i < 5; i++) {
        if (!strcasecmp(text, yes[i])) { *out = 1; return 0; }
        if (!strcasecmp(text, no[i])) { *out = 0; return 0; }
    }
    return -1;
}

/* Each kind has its own setter so the X-macro below stays type-correct;
 * a kind no tunable uses yet would be an unused function, hence "unused". */
__attribute__((unused)) static int set_INT(long *dst, const char *text) { return chorus_parse_int(text, dst); }
__attribute__((unused)) static int set_SIZE(size_t *dst, const char *text) { return chorus_parse_size(text, dst); }
__attribute__((unused)) static int set_BOOL(int *dst, const char *text) { return chorus_parse_bool(text, dst); }
__attribute__((unused)) static int set_STR(const char **dst, const char *text) { *dst = text; return 0; }

static const char *kind_name(chorus_tunable_kind_t kind)
{
    switch (kind) {
    case CHORUS_TUNABLE_INT: return "integer";
    case CHORUS_TUNABLE_SIZE: return "size (e.g. 4096, 64K, 1M)";
    case CHORUS_TUNABLE_BOOL: return "boolean (0/1, yes/no, on/off)";
    default: return "string";
    }
}

static void load(void)
{
    const char *text;
    load_result = CHORUS_SUCCESS;
#define CHORUS_TUNABLE(name, kind, def, help)                                                    \
    text = getenv("CHORUS_" #name);                                                          \
    if (text && set_##kind(&values.name, text) != 0 && load_result == CHORUS_SUCCESS) {      \
        load_result = CHORUS_INVALID_ARGUMENT;                                               \
        snprintf(load_error, sizeof load_error,                                              \
                 "environment variable CHORUS_" #name "='%s' is not a valid %s", text,      \
                 kind_name(CHORUS_TUNABLE_##kind));                                           \
    }
#include "tunables.def"
#undef CHORUS_TUNABLE
}

chorus_result_t chorus_tunables_load(const struct chorus_tunables **out)
{
    pthread_once(&load_once, load);
    if (out)
        *out = &values;
    if (load_result != CHORUS_SUCCESS)
        return CHORUS_ERR(load_result, "%s", load_error);
    return CHORUS_SUCCESS;
}

const struct chorus_tunables *chorus_tunables(void)
{
    pthread_once(&load_once, load);
    return &values;
}
