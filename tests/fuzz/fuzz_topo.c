/* fuzz_topo.c - libFuzzer target for the topology file parser, topo_parse()
 * (src/topo_file.c, libyaml): a topology file is user input (CHORUS_TOPO,
 * chorus_info, the simulator), so any bytes must give either a valid
 * topology or an error with text, never a crash, a leak or undefined
 * behaviour.
 *
 * Oracles besides the sanitizers:
 *  - on failure, the error text is not empty;
 *  - on success, the topology is consistent (nranks = product of the
 *    groups, rank_pos a permutation of 0..nranks-1), and writing it with
 *    topo_dump_yaml and parsing that again gives an equal topology (the
 *    promise of topo.h).
 * A violated oracle calls abort() so libFuzzer records the input.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* open_memstream */
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus.h"
#include "fuzz_target.h"
#include "topo.h"

static void oracle_failed(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_topo: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static void check_consistent(const struct topo *t)
{
    long n = 1;
    if (t->nlevels < 1 || t->nlevels > TOPO_MAX_LEVELS)
        oracle_failed("accepted a topology with a bad level count", NULL);
    for (int i = 0; i < t->nlevels; i++) {
        if (t->levels[i].group < 1)
            oracle_failed("accepted a level with no members", t->levels[i].name);
        n *= t->levels[i].group;
        if (n > (1L << 20))
            oracle_failed("accepted more than 1<<20 ranks", NULL);
    }
    if (n != t->nranks || !t->rank_pos)
        oracle_failed("nranks is not the product of the groups", NULL);
    char *seen = calloc((size_t)n, 1);
    if (!seen)
        return;
    for (long r = 0; r < n; r++) {
        int p = t->rank_pos[r];
        if (p < 0 || p >= n || seen[p])
            oracle_failed("rank_pos is not a permutation", NULL);
        seen[p] = 1;
    }
    free(seen);
}

static void check_round_trip(const struct topo *t)
{
    char *text = NULL, err[512];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    topo_dump_yaml(t, f);
    if (fclose(f) != 0) {
        free(text);
        return;
    }
    struct topo *again = NULL;
    if (topo_parse(text, len, "dump", &again, err, sizeof err) != CHORUS_SUCCESS) {
        fprintf(stderr, "---- dump ----\n%s---- end ----\n", text);
        oracle_failed("the dump of an accepted topology does not parse", err);
    }
    if (!topo_equal(t, again)) {
        fprintf(stderr, "---- dump ----\n%s---- end ----\n", text);
        oracle_failed("the dump of an accepted topology parses to a different one", NULL);
    }
    topo_free(again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct topo *t = NULL;
    fuzz_quiet_logs();
    memset(err, 'X', sizeof err);
    chorus_result_t rc = topo_parse((const char *)data, size, "fuzz", &t, err, sizeof err);
    if (!memchr(err, '\0', sizeof err))
        oracle_failed("error text not terminated", NULL);
    if (rc != CHORUS_SUCCESS) {
        if (t)
            oracle_failed("a failed parse returned a topology", NULL);
        if (!err[0])
            oracle_failed("a failed parse gave no error text", NULL);
        return 0;
    }
    if (!t)
        oracle_failed("a successful parse returned no topology", NULL);
    check_consistent(t);
    check_round_trip(t);
    topo_free(t);
    return 0;
}
