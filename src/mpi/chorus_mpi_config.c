/* chorus_mpi_config.c - the interposer's tunables (CHORUS_MPI_*, declared in
 * src/tunables.def): which collectives, which sizes, which timeout. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "chorus_mpi_internal.h"
#include "tunables.h"

static struct cmpi_config config;
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

static const char *const coll_names[CHORUS_MPI_NUM_COLLS] = {
    "allreduce",  "allgather",  "alltoall",  "alltoallv",  "reduce_scatter_block",
    "bcast",      "reduce",     "barrier",   "iallreduce", "iallgather",
    "ialltoall",  "ialltoallv", "ireduce_scatter_block",   "ibcast",
    "ireduce",    "ibarrier"};

const char *cmpi_coll_name(int coll)
{
    return coll >= 0 && coll < CHORUS_MPI_NUM_COLLS ? coll_names[coll] : "(bad collective)";
}

/* The bits a name in CHORUS_MPI_COLLS selects: a blocking name selects both
 * forms; 0 for an unknown name. */
static uint32_t name_bits(const char *name, size_t len)
{
    for (int c = 0; c < CHORUS_MPI_NUM_COLLS; c++) {
        if (strlen(coll_names[c]) != len || strncmp(coll_names[c], name, len) != 0)
            continue;
        uint32_t bits = 1u << c;
        if (c < CHORUS_MPI_NUM_BLOCKING)
            bits |= 1u << (c + CHORUS_MPI_NUM_BLOCKING);
        return bits;
    }
    return 0;
}

/* Parses CHORUS_MPI_COLLS; returns 0, or -1 (an unknown name). */
static int parse_colls(const char *text, uint32_t *out)
{
    const uint32_t all = (1u << CHORUS_MPI_NUM_COLLS) - 1;
    while (*text == ' ')
        text++;
    if (!strcmp(text, "all") || !*text) {
        *out = all;
        return 0;
    }
    if (!strcmp(text, "none")) {
        *out = 0;
        return 0;
    }
    int invert = *text == '^';
    if (invert)
        text++;
    uint32_t bits = 0;
    while (*text) {
        size_t len = strcspn(text, ", ");
        if (len) {
            uint32_t b = name_bits(text, len);
            if (!b)
                return -1;
            bits |= b;
        }
        text += len;
        while (*text == ',' || *text == ' ')
            text++;
    }
    *out = invert ? all & ~bits : bits;
    return 0;
}

static int64_t mix(int64_t h, uint64_t v)
{
    uint64_t x = (uint64_t)h ^ (v + 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return (int64_t)((x ^ (x >> 31)) & 0x3fffffffffffffffull);
}

static void load(void)
{
    const struct chorus_tunables *t;
    config.usable = 0;
    if (chorus_tunables_load(&t) != CHORUS_SUCCESS) {
        LOG_WARN(CMPI_SUBSYS, "libchorus_mpi: every MPI collective goes to MPI: %s",
                 chorus_get_last_error());
        config.why = "bad CHORUS_* environment (see the warning)";
        return;
    }
    if (parse_colls(t->MPI_COLLS, &config.colls) != 0) {
        LOG_WARN(CMPI_SUBSYS, "libchorus_mpi: every MPI collective goes to MPI: CHORUS_MPI_COLLS "
                 "'%s' names an unknown collective", t->MPI_COLLS);
        config.why = "bad CHORUS_MPI_COLLS (see the warning)";
        return;
    }
    config.min_bytes = t->MPI_MIN_BYTES;
    config.max_bytes = t->MPI_MAX_BYTES;
    if (t->MPI_TIMEOUT_MS > 0)
        config.timeout_ms = t->MPI_TIMEOUT_MS > INT_MAX ? INT_MAX : (int)t->MPI_TIMEOUT_MS;
    else if (t->MPI_TIMEOUT_MS == 0)
        config.timeout_ms = INT_MAX; /* about 25 days: no bound in practice */
    else
        config.timeout_ms = 0; /* chorus_config_t's default: CHORUS_TIMEOUT_MS */
    int64_t h = 0;
    h = mix(h, config.colls);
    h = mix(h, config.min_bytes);
    h = mix(h, config.max_bytes);
    h = mix(h, (uint64_t)(int64_t)t->MPI_TIMEOUT_MS);
    config.hash = h;
    config.usable = 1;
    LOG_DEBUG(CMPI_SUBSYS, "libchorus_mpi: collectives 0x%x, sizes %zu..%zu bytes, timeout %ld "
              "ms", (unsigned)config.colls, config.min_bytes, config.max_bytes,
              (long)t->MPI_TIMEOUT_MS);
}

const struct cmpi_config *cmpi_config(void)
{
    pthread_once(&config_once, load);
    return &config;
}

const char *cmpi_config_check(int coll, size_t bytes)
{
    const struct cmpi_config *cf = cmpi_config();
    if (!cf->usable)
        return cf->why;
    if (!(cf->colls & (1u << coll)))
        return "not selected by CHORUS_MPI_COLLS";
    if (bytes == CMPI_UNSIZED)
        return NULL;
    if (bytes < cf->min_bytes)
        return "smaller than CHORUS_MPI_MIN_BYTES";
    if (cf->max_bytes && bytes > cf->max_bytes)
        return "larger than CHORUS_MPI_MAX_BYTES";
    return NULL;
}
