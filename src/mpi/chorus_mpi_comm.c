/* chorus_mpi_comm.c - one Chorus communicator per MPI communicator, made on
 * first use and cached as an MPI attribute.
 *
 * The attribute's keyval copies nothing on MPI_Comm_dup (a duplicate gets
 * its own Chorus communicator when it first needs one) and its delete
 * callback destroys the Chorus communicator: MPI calls it on MPI_Comm_free
 * and MPI_Comm_disconnect. MPI_Finalize deletes the attributes of
 * MPI_COMM_SELF before anything else, while MPI still works: an attribute
 * there destroys every Chorus communicator left (those of MPI_COMM_WORLD and
 * of communicators never freed), and from then on every collective goes to
 * MPI.
 *
 * Creation is collective over the MPI communicator and uses only PMPI
 * collectives on it, the same ones on every rank in the same order, so a
 * failure anywhere is known everywhere and every rank falls back together:
 *   1. allreduce: every rank's settings parsed, and the same everywhere;
 *   2. bcast: rank 0's unique id (or that it could not make one);
 *   3. chorus_comm_init_rank_config, then allreduce: did it work everywhere?
 *      If not, the ranks that made one destroy it. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_mpi_internal.h"

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t keyval_once = PTHREAD_ONCE_INIT;
static int comm_keyval = MPI_KEYVAL_INVALID;
static int self_keyval = MPI_KEYVAL_INVALID;
static atomic_int self_hook_set;
static atomic_int finalizing; /* MPI_Finalize has begun: everything goes to MPI */
static struct cmpi_comm *live; /* every state, for the finalize hook */

void cmpi_lock(void) { pthread_mutex_lock(&state_lock); }
void cmpi_unlock(void) { pthread_mutex_unlock(&state_lock); }

void cmpi_comm_ref_locked(struct cmpi_comm *c) { c->refs++; }

void cmpi_comm_unref(struct cmpi_comm *c)
{
    cmpi_lock();
    int last = --c->refs == 0;
    cmpi_unlock();
    if (last)
        free(c);
}

/* The MPI communicator goes away: finishes c's in-flight operations,
 * destroys its Chorus communicator, drops the attribute's reference (a
 * nonblocking operation not yet waited for keeps c until it is). */
static void release(struct cmpi_comm *c)
{
    cmpi_lock();
    if (c->prev)
        c->prev->next = c->next;
    else if (live == c)
        live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    cmpi_unlock();
    cmpi_nb_detach_all(c);
    cmpi_lock();
    chorus_comm_t ccomm = c->chorus;
    c->chorus = NULL;
    c->released = 1;
    cmpi_unlock();
    if (ccomm) {
        chorus_comm_finalize(ccomm);
        chorus_comm_destroy(ccomm);
    }
    cmpi_comm_unref(c);
}

static int delete_comm_attr(MPI_Comm comm, int keyval, void *val, void *extra)
{
    (void)comm;
    (void)keyval;
    (void)extra;
    /* after the finalize hook the state is gone already */
    if (!atomic_load(&finalizing) && val)
        release(val);
    return MPI_SUCCESS;
}

static int finalize_hook(MPI_Comm comm, int keyval, void *val, void *extra)
{
    (void)comm;
    (void)keyval;
    (void)val;
    (void)extra;
    atomic_store(&finalizing, 1);
    int n = 0;
    for (;;) {
        cmpi_lock();
        struct cmpi_comm *c = live;
        cmpi_unlock();
        if (!c)
            break;
        release(c);
        n++;
    }
    LOG_DEBUG(CMPI_SUBSYS, "MPI_Finalize: destroyed %d Chorus communicator state%s", n,
              n == 1 ? "" : "s");
    return MPI_SUCCESS;
}

static void make_keyvals(void)
{
    if (PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, delete_comm_attr, &comm_keyval, NULL) !=
        MPI_SUCCESS)
        comm_keyval = MPI_KEYVAL_INVALID;
    if (PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, finalize_hook, &self_keyval, NULL) !=
        MPI_SUCCESS)
        self_keyval = MPI_KEYVAL_INVALID;
}

/* Caches state c (usable or disabled) on comm. Returns 0, or -1. */
static int attach(MPI_Comm comm, struct cmpi_comm *c)
{
    c->refs = 1;
    if (PMPI_Comm_set_attr(comm, comm_keyval, c) != MPI_SUCCESS)
        return -1;
    cmpi_lock();
    c->next = live;
    if (live)
        live->prev = c;
    live = c;
    cmpi_unlock();
    /* the finalize hook, once; before it exists nothing needs it */
    if (!atomic_exchange(&self_hook_set, 1) &&
        PMPI_Comm_set_attr(MPI_COMM_SELF, self_keyval, NULL) != MPI_SUCCESS)
        LOG_WARN(CMPI_SUBSYS, "cannot set the MPI_Finalize hook on MPI_COMM_SELF: Chorus "
                 "communicators will not be destroyed at MPI_Finalize");
    return 0;
}

/* A disabled state for comm, so later calls decide at once. */
static const char *attach_disabled(MPI_Comm comm, const char *why, int rank, int size)
{
    struct cmpi_comm *c = calloc(1, sizeof *c);
    if (!c)
        return why;
    c->disabled = 1;
    c->why = why;
    c->rank = rank;
    c->size = size;
    if (attach(comm, c) != 0)
        free(c);
    return why;
}

const char *cmpi_comm_find(MPI_Comm comm, struct cmpi_comm **c, int *rank, int *size)
{
    *c = NULL;
    if (atomic_load(&finalizing))
        return "MPI_Finalize has begun";
    if (comm == MPI_COMM_NULL)
        return "MPI_COMM_NULL (MPI reports it)";
    pthread_once(&keyval_once, make_keyvals);
    if (comm_keyval == MPI_KEYVAL_INVALID || self_keyval == MPI_KEYVAL_INVALID)
        return "cannot create the MPI attribute keyvals";
    void *val = NULL;
    int flag = 0;
    if (PMPI_Comm_get_attr(comm, comm_keyval, &val, &flag) != MPI_SUCCESS)
        return "not a valid communicator (MPI reports it)";
    if (flag && val) {
        struct cmpi_comm *s = val;
        if (__atomic_load_n(&s->disabled, __ATOMIC_ACQUIRE))
            return s->why;
        *c = s;
        *rank = s->rank;
        *size = s->size;
        return NULL;
    }
    int inter = 0;
    if (PMPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS ||
        PMPI_Comm_rank(comm, rank) != MPI_SUCCESS || PMPI_Comm_size(comm, size) != MPI_SUCCESS)
        return "not a valid communicator (MPI reports it)";
    if (inter)
        return attach_disabled(comm, "inter-communicator", *rank, *size);
    return NULL;
}

/* Steps 1-3 of the header. Returns NULL and the new Chorus communicator, or
 * the reason (the same on every rank). */
static const char *setup(MPI_Comm comm, int rank, int size, chorus_comm_t *out)
{
    const struct cmpi_config *cf = cmpi_config();
    int64_t mine[3] = {cf->usable, cf->hash, -cf->hash}, all[3];
    if (PMPI_Allreduce(mine, all, 3, MPI_INT64_T, MPI_MIN, comm) != MPI_SUCCESS)
        return "an MPI call of the setup failed";
    if (!all[0])
        return "a rank has a bad CHORUS_* environment";
    if (all[1] != cf->hash || -all[2] != cf->hash)
        return "CHORUS_MPI_* settings differ between ranks";

    struct {
        int64_t ok;
        chorus_unique_id_t id;
    } root;
    memset(&root, 0, sizeof root);
    if (rank == 0) {
        root.ok = chorus_get_unique_id(&root.id) == CHORUS_SUCCESS;
        if (!root.ok)
            LOG_WARN(CMPI_SUBSYS, "chorus_get_unique_id failed: %s", chorus_get_last_error());
    }
    if (PMPI_Bcast(&root, (int)sizeof root, MPI_BYTE, 0, comm) != MPI_SUCCESS)
        return "an MPI call of the setup failed";
    if (!root.ok)
        return "rank 0 could not start a Chorus bootstrap (see its warning)";

    char name[MPI_MAX_OBJECT_NAME] = "";
    int len = 0;
    if (PMPI_Comm_get_name(comm, name, &len) != MPI_SUCCESS || !len)
        strcpy(name, "mpi");
    chorus_config_t config = CHORUS_CONFIG_INITIALIZER;
    config.timeout_ms = cf->timeout_ms;
    config.name = name;
    chorus_comm_t ccomm = NULL;
    chorus_result_t res = chorus_comm_init_rank_config(&ccomm, size, root.id, rank, &config);
    if (res != CHORUS_SUCCESS) {
        LOG_WARN(CMPI_SUBSYS, "%s: Chorus communicator creation failed, its collectives go to "
                 "MPI: %s", name, chorus_get_last_error());
        ccomm = NULL;
    }
    int64_t ok = ccomm != NULL, all_ok = 0;
    if (PMPI_Allreduce(&ok, &all_ok, 1, MPI_INT64_T, MPI_MIN, comm) != MPI_SUCCESS)
        all_ok = 0;
    if (!all_ok) {
        if (ccomm) {
            chorus_comm_abort(ccomm);
            chorus_comm_destroy(ccomm);
        }
        return "Chorus communicator creation failed on a rank (see its warning)";
    }
    if (rank == 0)
        LOG_INFO(CMPI_SUBSYS, "%s (%d ranks): collectives run on Chorus", name, size);
    *out = ccomm;
    return NULL;
}

const char *cmpi_comm_create(MPI_Comm comm, struct cmpi_comm **out)
{
    int rank, size;
    *out = NULL;
    if (PMPI_Comm_rank(comm, &rank) != MPI_SUCCESS || PMPI_Comm_size(comm, &size) != MPI_SUCCESS)
        return "not a valid communicator (MPI reports it)";
    chorus_comm_t ccomm = NULL;
    const char *why = setup(comm, rank, size, &ccomm);
    if (why)
        return attach_disabled(comm, why, rank, size);
    struct cmpi_comm *c = calloc(1, sizeof *c);
    if (c) {
        c->chorus = ccomm;
        c->rank = rank;
        c->size = size;
    }
    if (!c || attach(comm, c) != 0) {
        /* the peers went on: this communicator breaks for them too */
        free(c);
        chorus_comm_abort(ccomm);
        chorus_comm_destroy(ccomm);
        return "out of memory or MPI_Comm_set_attr failed";
    }
    *out = c;
    return NULL;
}
