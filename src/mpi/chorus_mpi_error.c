/* chorus_mpi_error.c - counters, the "goes to MPI because" log, and Chorus
 * failures turned into MPI errors.
 *
 * Log lines use Chorus' logger (CHORUS_LOG_LEVEL, CHORUS_LOG_FILE; subsystem
 * "mpi"): a call that goes to MPI is logged at debug the first time per
 * collective and reason, at trace afterwards, so a benchmark loop at debug
 * level does not drown the log.
 *
 * A failure becomes an MPI error code of its own error class ("Chorus
 * error"), whose string (MPI_Error_string) is Chorus' full text naming the
 * ranks involved; the communicator's error handler is called with it. The
 * codes are added with MPI_Add_error_code; after CODES of them the oldest is
 * reused with the new text. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "chorus_mpi_internal.h"

static atomic_ullong on_chorus[CHORUS_MPI_NUM_COLLS];
static atomic_ullong to_mpi[CHORUS_MPI_NUM_COLLS];

/* guarded by cmpi_lock */
static int last_coll = -1;
static const char *last_why;
#define SEEN_MAX 128
static struct {
    int coll;
    const char *why;
} seen[SEEN_MAX];
static int nseen;

void cmpi_note_chorus(int coll)
{
    atomic_fetch_add_explicit(&on_chorus[coll], 1, memory_order_relaxed);
}

void cmpi_note_fallback(int coll, MPI_Comm comm, const char *why)
{
    (void)comm;
    atomic_fetch_add_explicit(&to_mpi[coll], 1, memory_order_relaxed);
    int first = 1;
    cmpi_lock();
    last_coll = coll;
    last_why = why;
    for (int i = 0; i < nseen; i++)
        if (seen[i].coll == coll && seen[i].why == why)
            first = 0;
    if (first && nseen < SEEN_MAX) {
        seen[nseen].coll = coll;
        seen[nseen].why = why;
        nseen++;
    }
    cmpi_unlock();
    if (first)
        LOG_DEBUG(CMPI_SUBSYS, "MPI_%s goes to MPI: %s (further calls for this reason are "
                  "logged at trace level)", cmpi_coll_name(coll), why);
    else
        LOG_TRACE(CMPI_SUBSYS, "MPI_%s goes to MPI: %s", cmpi_coll_name(coll), why);
}

/* ---- MPI error codes ------------------------------------------------------------ */

#define CODES 32
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static int err_class = -1;
static int codes[CODES];
static int ncodes;

/* A code carrying text, or MPI_ERR_OTHER when MPI cannot add one. */
static int make_code(const char *text)
{
    int code = MPI_ERR_OTHER;
    pthread_mutex_lock(&err_lock);
    if (err_class < 0) {
        int cls;
        if (PMPI_Add_error_class(&cls) == MPI_SUCCESS) {
            err_class = cls;
            PMPI_Add_error_string(cls, "Chorus error (libchorus_mpi)");
        }
    }
    if (err_class >= 0) {
        if (ncodes < CODES) {
            if (PMPI_Add_error_code(err_class, &codes[ncodes]) == MPI_SUCCESS)
                code = codes[ncodes++];
        } else {
            code = codes[ncodes++ % CODES];
        }
        if (code != MPI_ERR_OTHER)
            PMPI_Add_error_string(code, text);
    }
    pthread_mutex_unlock(&err_lock);
    return code;
}

int cmpi_error(int coll, struct cmpi_comm *c, MPI_Comm comm, chorus_result_t res,
               const char *detail)
{
    char text[MPI_MAX_ERROR_STRING];
    if (!detail)
        detail = chorus_get_last_error();
    const char *name = chorus_get_error_string(res);
    if (detail && *detail) /* Chorus' text starts with the code's name already */
        snprintf(text, sizeof text, "MPI_%s on Chorus: %s", cmpi_coll_name(coll), detail);
    else
        snprintf(text, sizeof text, "MPI_%s on Chorus: %s", cmpi_coll_name(coll), name);
    int broken = 0, released = 0;
    cmpi_lock();
    if (c) {
        chorus_result_t async = CHORUS_SUCCESS;
        /* CHORUS_IN_PROGRESS is the watchdog reporting a late rank on a
         * collective still running: the communicator is healthy. */
        if (c->chorus && (chorus_comm_get_async_error(c->chorus, &async) != CHORUS_SUCCESS ||
                          (async != CHORUS_SUCCESS && async != CHORUS_IN_PROGRESS)) &&
            !c->disabled) {
            c->why = "Chorus failed on this communicator earlier";
            __atomic_store_n(&c->disabled, 1, __ATOMIC_RELEASE);
            broken = 1;
        }
        released = c->released;
    }
    cmpi_unlock();
    if (broken)
        LOG_WARN(CMPI_SUBSYS, "%s; later collectives on this communicator go to MPI", text);
    int code = make_code(text);
    if (!released && comm != MPI_COMM_NULL)
        PMPI_Comm_call_errhandler(comm, code);
    return code;
}

/* ---- exported for tests and users (chorus_mpi_stats.h) ---------------------------- */

int chorus_mpi_get_counts(int coll, unsigned long long *chorus_calls,
                          unsigned long long *mpi_calls)
{
    if (coll < 0 || coll >= CHORUS_MPI_NUM_COLLS)
        return -1;
    if (chorus_calls)
        *chorus_calls = atomic_load_explicit(&on_chorus[coll], memory_order_relaxed);
    if (mpi_calls)
        *mpi_calls = atomic_load_explicit(&to_mpi[coll], memory_order_relaxed);
    return 0;
}

const char *chorus_mpi_coll_name(int coll)
{
    return coll >= 0 && coll < CHORUS_MPI_NUM_COLLS ? cmpi_coll_name(coll) : NULL;
}

void chorus_mpi_last_fallback(char *buf, size_t cap)
{
    if (!buf || !cap)
        return;
    cmpi_lock();
    if (last_coll >= 0)
        snprintf(buf, cap, "%s: %s", cmpi_coll_name(last_coll), last_why);
    else
        buf[0] = '\0';
    cmpi_unlock();
}
