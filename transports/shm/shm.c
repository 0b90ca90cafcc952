/* shm.c - creating, exchanging and mapping the per-rank segments, and the
 * health-checked waits every shared-memory algorithm uses. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "shm/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bootstrap.h"
#include "error.h"
#include "log.h"
#include "tunables.h"

/* What each rank tells the others about its segment. */
struct seg_info {
    char name[64];
    uint64_t ctrl_addr; /* where the owner mapped it: the target of the CMA probe */
    uint64_t bytes;
    int32_t pid;
    int32_t ok;
};

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

static size_t ctrl_bytes(int nranks)
{
    return round_up(sizeof(struct shm_ctrl) + 2 * (size_t)nranks * sizeof(struct shm_line), 4096);
}

static chorus_result_t create_segment(struct shm_comm *s, struct seg_info *mine)
{
    unsigned char rnd[12];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "getrandom failed: %s", strerror(errno));
    /* A random name: another user cannot guess it to open or pre-create it. */
    int n = snprintf(mine->name, sizeof mine->name, "/chorus-");
    for (size_t i = 0; i < sizeof rnd; i++)
        n += snprintf(mine->name + n, sizeof mine->name - (size_t)n, "%02x", rnd[i]);
    snprintf(mine->name + n, sizeof mine->name - (size_t)n, "-%d", s->rank);

    int fd = shm_open(mine->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "shm_open(%s) failed: %s", mine->name,
                          strerror(errno));
    if (ftruncate(fd, (off_t)s->seg_bytes) != 0) {
        int e = errno;
        close(fd);
        shm_unlink(mine->name);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "ftruncate of %zu bytes for %s failed: %s",
                          s->seg_bytes, mine->name, strerror(e));
    }
    /* MAP_POPULATE: the owner touches every page first, so they sit on its
     * NUMA node and no page fault lands inside a timed collective. */
    void *p = mmap(NULL, s->seg_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) {
        shm_unlink(mine->name);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "mmap of %zu bytes of %s failed: %s (is /dev/shm "
                          "large enough?)", s->seg_bytes, mine->name, strerror(e));
    }
    s->maps[s->rank] = p;
    struct shm_ctrl *c = p;
    c->pid = (int32_t)getpid();
    c->nranks = (uint32_t)s->nranks;
    mine->ctrl_addr = (uint64_t)(uintptr_t)p;
    mine->bytes = s->seg_bytes;
    mine->pid = (int32_t)getpid();
    return CHORUS_SUCCESS;
}

static chorus_result_t map_peer(struct shm_comm *s, int q, const struct seg_info *info)
{
    if (info->bytes != s->seg_bytes)
        return CHORUS_ERR(CHORUS_INVALID_USAGE,
                          "rank %d has a %llu-byte segment, this rank %zu: set the CHORUS_SHM_* "
                          "tunables alike on every rank", q, (unsigned long long)info->bytes,
                          s->seg_bytes);
    char name[sizeof info->name];
    memcpy(name, info->name, sizeof name);
    name[sizeof name - 1] = '\0';
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "cannot open rank %d's segment %s: %s", q, name,
                          strerror(errno));
    void *p = mmap(NULL, s->seg_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "cannot map rank %d's segment %s: %s", q, name,
                          strerror(e));
    s->maps[q] = p;
    return CHORUS_SUCCESS;
}

/* Single copy needs the kernel to let us read the peer (same user, ptrace
 * permitted): try it on a value we can also see through shared memory. */
static int cma_probe(struct shm_comm *s, int q, const struct seg_info *info)
{
    int32_t value = 0;
    struct iovec local = {&value, sizeof value};
    struct iovec remote = {(void *)(uintptr_t)(info->ctrl_addr + offsetof(struct shm_ctrl, pid)),
                           sizeof value};
    ssize_t got = process_vm_readv(info->pid, &local, 1, &remote, 1, 0);
    if (got != (ssize_t)sizeof value || value != s->ctrl[q]->pid) {
        LOG_INFO("shm", "single copy from rank %d refused (%s): copying through shared memory",
                 q, got < 0 ? strerror(errno) : "short read");
        return 0;
    }
    return 1;
}

static chorus_result_t agree(const struct shm_exchange *ex, struct shm_comm *s, int ok,
                             const char *what)
{
    int32_t *all = calloc((size_t)s->nranks, sizeof *all);
    if (!all)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    int32_t mine = ok;
    chorus_result_t res = ex->allgather(ex->ctx, &mine, all, sizeof mine);
    for (int q = 0; res == CHORUS_SUCCESS && q < s->nranks; q++)
        if (!all[q])
            res = CHORUS_ERR(CHORUS_REMOTE_ERROR, "rank %d could not %s", q, what);
    free(all);
    return res;
}

chorus_result_t shm_comm_create(struct shm_comm **out, const struct shm_exchange *xg, int rank,
                                int nranks, int oversubscribed, int timeout_ms,
                                _Atomic int *local_abort)
{
    const struct chorus_tunables *t = chorus_tunables();
    struct shm_comm *s = calloc(1, sizeof *s);
    if (!s)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    s->rank = rank;
    s->nranks = nranks;
    s->chunk = round_up(t->SHM_CHUNK < 4096 ? 4096 : t->SHM_CHUNK, 4096);
    s->p2p_slot = round_up(t->SHM_P2P_SLOT < 4096 ? 4096 : t->SHM_P2P_SLOT, 4096);
    s->small = t->SHM_SMALL;
    s->cma_min = t->CMA_MIN;
    s->cma_max = t->CMA_MAX;
    s->zcopy_min = t->ZCOPY_MIN;
    s->local_abort = local_abort;
    s->blame = -1;
    s->seg_bytes = ctrl_bytes(nranks) + 2 * s->chunk +
                   (size_t)nranks * SHM_P2P_SLOTS * s->p2p_slot;
    s->oversubscribed = oversubscribed;
    chorus_wait_policy_init(&s->policy, oversubscribed, timeout_ms);
    s->ctrl = calloc((size_t)nranks, sizeof *s->ctrl);
    s->ws = calloc((size_t)nranks, sizeof *s->ws);
    s->p2p = calloc((size_t)nranks, sizeof *s->p2p);
    s->maps = calloc((size_t)nranks, sizeof *s->maps);
    s->pids = calloc((size_t)nranks, sizeof *s->pids);
    s->pidfds = malloc((size_t)nranks * sizeof *s->pidfds);
    s->p2p_tail_seen = calloc((size_t)nranks, sizeof *s->p2p_tail_seen);
    struct seg_info *infos = calloc((size_t)nranks, sizeof *infos);
    if (!s->ctrl || !s->ws || !s->p2p || !s->maps || !s->pids || !s->pidfds ||
        !s->p2p_tail_seen || !infos) {
        free(infos);
        shm_comm_destroy(s);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    }
    for (int q = 0; q < nranks; q++)
        s->pidfds[q] = -1;

    struct seg_info mine;
    memset(&mine, 0, sizeof mine);
    chorus_result_t res = create_segment(s, &mine);
    mine.ok = res == CHORUS_SUCCESS;
    chorus_result_t ex = xg->allgather(xg->ctx, &mine, infos, sizeof mine);
    if (ex != CHORUS_SUCCESS || res != CHORUS_SUCCESS) {
        if (mine.ok)
            shm_unlink(mine.name);
        free(infos);
        shm_comm_destroy(s);
        return res != CHORUS_SUCCESS ? res : ex;
    }
    for (int q = 0; q < nranks; q++)
        if (!infos[q].ok) {
            shm_unlink(mine.name);
            free(infos);
            shm_comm_destroy(s);
            return CHORUS_ERR(CHORUS_REMOTE_ERROR, "rank %d could not create its shared memory "
                              "segment (see its log)", q);
        }
    res = CHORUS_SUCCESS;
    for (int q = 0; q < nranks && res == CHORUS_SUCCESS; q++)
        if (q != rank)
            res = map_peer(s, q, &infos[q]);
    /* Every rank has mapped every segment once this agreement completes:
     * the names can go, so nothing is left behind if a process dies later. */
    chorus_result_t agreed = agree(xg, s, res == CHORUS_SUCCESS, "map the shared segments");
    shm_unlink(mine.name);
    if (res == CHORUS_SUCCESS)
        res = agreed;
    if (res != CHORUS_SUCCESS) {
        free(infos);
        shm_comm_destroy(s);
        return res;
    }
    size_t cb = ctrl_bytes(nranks);
    for (int q = 0; q < nranks; q++) {
        s->ctrl[q] = s->maps[q];
        s->ws[q] = (char *)s->maps[q] + cb;
        s->p2p[q] = s->ws[q] + 2 * s->chunk;
        s->pids[q] = infos[q].pid;
        if (q != rank)
            s->pidfds[q] = (int)syscall(SYS_pidfd_open, infos[q].pid, 0);
    }

    const char *cma = t->CMA;
    int want = strcasecmp(cma, "off") != 0;
    int ok = 1;
    for (int q = 0; want && q < nranks; q++)
        if (q != rank && !cma_probe(s, q, &infos[q]))
            ok = 0;
    free(infos);
    /* Both facts choose algorithms (single copy or staged), so every rank
     * must see the same: single copy if all can, oversubscribed if any is. */
    enum { CAN_CMA = 1, OVERSUBSCRIBED = 2 };
    int32_t facts = (want && ok ? CAN_CMA : 0) | (oversubscribed ? OVERSUBSCRIBED : 0);
    int32_t *all = calloc((size_t)nranks, sizeof *all);
    if (!all) {
        shm_comm_destroy(s);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    }
    res = xg->allgather(xg->ctx, &facts, all, sizeof facts);
    s->cma = res == CHORUS_SUCCESS;
    for (int q = 0; q < nranks; q++) {
        if (!(all[q] & CAN_CMA))
            s->cma = 0;
        if (all[q] & OVERSUBSCRIBED)
            s->oversubscribed = 1;
    }
    free(all);
    if (s->oversubscribed != oversubscribed)
        chorus_wait_policy_init(&s->policy, s->oversubscribed, timeout_ms);
    if (res == CHORUS_SUCCESS && !strcasecmp(cma, "on") && !s->cma)
        res = CHORUS_ERR(CHORUS_SYSTEM_ERROR, "CHORUS_CMA=on but process_vm_readv between the "
                         "ranks is not permitted (ptrace restrictions?)");
    if (res != CHORUS_SUCCESS) {
        shm_comm_destroy(s);
        return res;
    }
    LOG_INFO("shm", "rank %d: %d ranks, %zu-byte segments, chunk %zu, single copy %s, "
             "oversubscribed %s", rank, nranks, s->seg_bytes, s->chunk, s->cma ? "on" : "off",
             s->oversubscribed ? "yes" : "no");
    *out = s;
    return CHORUS_SUCCESS;
}

void shm_comm_destroy(struct shm_comm *s)
{
    if (!s)
        return;
    shm_zcopy_release(s);
    for (int q = 0; s->maps && q < s->nranks; q++)
        if (s->maps[q])
            munmap(s->maps[q], s->seg_bytes);
    for (int q = 0; s->pidfds && q < s->nranks; q++)
        if (s->pidfds[q] >= 0)
            close(s->pidfds[q]);
    free(s->ctrl);
    free(s->ws);
    free(s->p2p);
    free(s->p2p_tail_seen);
    free(s->maps);
    free(s->pids);
    free(s->pidfds);
    free(s);
}

void shm_comm_abort(struct shm_comm *s)
{
    struct shm_ctrl *me = s->ctrl[s->rank];
    int blamed = s->blame; /* once: the communicator's thread may be setting it */
    int blame = blamed >= 0 ? blamed : shm_comm_rank(s, s->rank);
    chorus_result_t code = blamed >= 0 ? (chorus_result_t)s->blame_code : CHORUS_REMOTE_ERROR;
    atomic_store(&me->abort.code, (uint32_t)code);
    atomic_store(&me->abort.blame, (uint32_t)blame + 1);
    /* Wake peers sleeping on any of my counters so they notice now. */
    chorus_flag_wake_all(&me->ready.value);
    chorus_flag_wake_all(&me->ready2.value);
    chorus_flag_wake_all(&me->done.value);
    chorus_flag_wake_all(&me->result.value);
    for (int q = 0; q < s->nranks; q++) {
        chorus_flag_wake_all(&shm_p2p_head(me, q)->value);
        chorus_flag_wake_all(&shm_p2p_tail(me, q)->value);
    }
}

/* ---- waits ---------------------------------------------------------------- */

struct wait_ctx {
    struct shm_comm *s;
    int q;              /* rank waited for, or -1: a group */
    size_t line_offset; /* group waits: the counter every rank posts */
    uint32_t target;
};

/* The first rank found to have died, or -1. Every peer is checked, not
 * only the one waited for (in a group wait the missing rank may be any),
 * with one poll() over all the pidfds. */
static int exited_rank(struct shm_comm *s, int first)
{
    struct pollfd stack[64], *fds = stack;
    int n = s->nranks;
    if (n > 64 && !(fds = malloc((size_t)n * sizeof *fds)))
        fds = NULL; /* then the slow path below checks one by one */
    int nfds = 0;
    for (int i = 0; fds && i < n; i++) {
        int q = (first + i) % n;
        if (q == s->rank || s->pidfds[q] < 0)
            continue;
        fds[nfds].fd = s->pidfds[q];
        fds[nfds].events = POLLIN;
        fds[nfds].revents = 0;
        nfds++;
    }
    int ready = fds && nfds ? poll(fds, (nfds_t)nfds, 0) : 0;
    int found = -1;
    for (int i = 0; i < n && found < 0; i++) {
        int q = (first + i) % n;
        if (q == s->rank)
            continue;
        /* A rank that posted its abort flag failed cleanly and blamed
         * someone: that blame, not its exit, is the news. */
        if (atomic_load(&s->ctrl[q]->abort.blame))
            continue;
        int dead;
        if (s->pidfds[q] >= 0 && fds) {
            dead = 0;
            for (int k = 0; ready > 0 && k < nfds; k++)
                if (fds[k].fd == s->pidfds[q])
                    dead = fds[k].revents != 0;
        } else if (s->pidfds[q] >= 0) {
            struct pollfd p = {s->pidfds[q], POLLIN, 0};
            dead = poll(&p, 1, 0) > 0;
        } else {
            dead = kill(s->pids[q], 0) != 0 && errno == ESRCH;
        }
        if (dead)
            found = q;
    }
    if (fds != stack)
        free(fds);
    return found;
}

static chorus_result_t health_check(void *arg, int timed_out)
{
    struct wait_ctx *w = arg;
    return shm_health(w->s, w->q, w->line_offset, w->target, timed_out);
}

/* Holds node rank `rank` responsible (kept as its communicator rank). */
static chorus_result_t blame(struct shm_comm *s, int rank, chorus_result_t code)
{
    s->blame = shm_comm_rank(s, rank);
    s->blame_code = code;
    return code;
}

/* Group wait timed out: name the ranks whose counter is behind. */
static chorus_result_t group_timeout(struct shm_comm *s, size_t line_offset, uint32_t target)
{
    char names[160];
    size_t n = 0;
    int first = -1, count = 0;
    names[0] = '\0';
    for (int q = 0; q < s->nranks && n < sizeof names - 16; q++) {
        uint32_t v = atomic_load(&shm_line_at(s->ctrl[q], line_offset)->value);
        if (!chorus_serial_geq(v, target)) {
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%d", first < 0 ? "" : ",",
                                  shm_comm_rank(s, q));
            if (first < 0)
                first = q;
            count++;
        }
    }
    CHORUS_ERR(CHORUS_TIMEOUT, "%s: rank %d waited %lld ms for %s %s to reach step %u; "
               "stuck, or not calling the same collective", s->label, shm_comm_rank(s, s->rank),
               (long long)(s->policy.timeout_ns / 1000000), count > 1 ? "ranks" : "rank",
               first < 0 ? "?" : names, target);
    return blame(s, first < 0 ? s->rank : first, CHORUS_TIMEOUT);
}

chorus_result_t shm_health(struct shm_comm *s, int q, size_t line_offset, uint32_t target,
                           int timed_out)
{
    if (atomic_load(s->local_abort))
        return CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: the communicator was aborted", s->label);
    if (s->idle)
        CHORUS_CHECK(s->idle(s->idle_arg));
    /* A dead process first: it is the root cause others will be blamed for. */
    int gone = exited_rank(s, q >= 0 ? q : s->rank);
    if (gone >= 0) {
        CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: rank %d (pid %d) exited while rank %d was waiting "
                   "for %s", s->label, shm_comm_rank(s, gone), (int)s->pids[gone],
                   shm_comm_rank(s, s->rank),
                   gone == q ? "it" : "a collective to complete");
        return blame(s, gone, CHORUS_REMOTE_ERROR);
    }
    for (int r = 0; r < s->nranks; r++) {
        if (r == s->rank)
            continue;
        uint32_t b = atomic_load(&s->ctrl[r]->abort.blame);
        if (!b)
            continue;
        /* culprit is a communicator rank, maybe on another node */
        int culprit = (int)b - 1, who = shm_comm_rank(s, r);
        chorus_result_t code = (chorus_result_t)atomic_load(&s->ctrl[r]->abort.code);
        if (culprit == who || culprit < 0 || (!s->comm_ranks && culprit >= s->nranks)) {
            CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: rank %d failed or aborted the communicator",
                       s->label, who);
            return blame(s, r, CHORUS_REMOTE_ERROR);
        }
        if (culprit == shm_comm_rank(s, s->rank)) {
            /* We are the one they gave up on (we were late): to us it is
             * the peer that failed the communicator. */
            CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: rank %d gave up waiting for this rank (%s); "
                       "the communicator is unusable", s->label, who,
                       chorus_get_error_string(code));
            return blame(s, r, CHORUS_REMOTE_ERROR);
        }
        if (code != CHORUS_TIMEOUT)
            code = CHORUS_REMOTE_ERROR;
        CHORUS_ERR(code, "%s: rank %d gave up on rank %d (%s); so does rank %d", s->label, who,
                   culprit, chorus_get_error_string(code), shm_comm_rank(s, s->rank));
        s->blame = culprit; /* already a communicator rank */
        s->blame_code = code;
        return code;
    }
    if (timed_out) {
        if (q < 0)
            return group_timeout(s, line_offset, target);
        CHORUS_ERR(CHORUS_TIMEOUT, "%s: rank %d waited %lld ms for rank %d to reach step %u; "
                   "it is stuck or did not call the same collective", s->label,
                   shm_comm_rank(s, s->rank), (long long)(s->policy.timeout_ns / 1000000),
                   shm_comm_rank(s, q), target);
        return blame(s, q, CHORUS_TIMEOUT);
    }
    return CHORUS_SUCCESS;
}

chorus_result_t shm_wait(struct shm_comm *s, int q, struct shm_line *line, uint32_t target)
{
    struct wait_ctx w = {s, q, 0, target};
    return chorus_wait_flag(&line->value, target, &s->ctrl[q]->sleepers.value, &s->policy,
                            health_check, &w);
}

chorus_result_t shm_wait_shared(struct shm_comm *s, struct shm_line *line, uint32_t target,
                                size_t group_offset)
{
    struct wait_ctx w = {s, -1, group_offset, target};
    return chorus_wait_flag(&line->value, target, &s->ctrl[0]->sleepers.value, &s->policy,
                            health_check, &w);
}

chorus_result_t shm_wait_all(struct shm_comm *s, size_t line_offset, uint32_t target)
{
    /* One spin budget for the whole group, not one per peer: when ranks
     * outnumber cores, spinning on the second late peer after the first
     * only burns the core that one of them needs. */
    struct chorus_wait_policy policy = s->policy;
    int64_t start = 0;
    /* Start after myself so ranks do not all poll rank 0 first. */
    for (int i = 1; i < s->nranks; i++) {
        int q = (s->rank + i) % s->nranks;
        struct shm_line *line = shm_line_at(s->ctrl[q], line_offset);
        if (chorus_serial_geq(atomic_load_explicit(&line->value, memory_order_acquire), target))
            continue;
        if (start) {
            int64_t spent = chorus_now_ns() - start;
            policy.spin_ns = s->policy.spin_ns > spent ? s->policy.spin_ns - spent : 0;
            policy.yield_ns = s->policy.yield_ns > spent ? s->policy.yield_ns - spent : 0;
        } else {
            start = chorus_now_ns();
        }
        struct wait_ctx w = {s, q, line_offset, target};
        CHORUS_CHECK(chorus_wait_flag(&line->value, target, &s->ctrl[q]->sleepers.value, &policy,
                                      health_check, &w));
    }
    return CHORUS_SUCCESS;
}

chorus_result_t shm_reserve(struct shm_comm *s, uint32_t step)
{
    uint32_t need = step - 2;
    /* Counters start at 0 and synced at 0, so steps 1 and 2 pass at once. */
    if (chorus_serial_geq(s->synced, need))
        return CHORUS_SUCCESS;
    CHORUS_CHECK(shm_wait_all(s, SHM_DONE, need));
    s->synced = need;
    return CHORUS_SUCCESS;
}

chorus_result_t shm_finish_all(struct shm_comm *s, uint32_t step)
{
    shm_post(s, &s->ctrl[s->rank]->done, step);
    CHORUS_CHECK(shm_wait_all(s, SHM_DONE, step));
    s->synced = step;
    return CHORUS_SUCCESS;
}

chorus_result_t shm_cma_copy(struct shm_comm *s, int q, void *local, uint64_t remote, size_t len,
                             int write)
{
    char *mine = local;
    while (len > 0) {
        struct iovec l = {mine, len};
        struct iovec r = {(void *)(uintptr_t)remote, len};
        ssize_t got = write ? process_vm_writev(s->pids[q], &l, 1, &r, 1, 0)
                            : process_vm_readv(s->pids[q], &l, 1, &r, 1, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            int e = got < 0 ? errno : 0;
            /* The peer gone or failed (its buffer freed) explains most
             * failures here: report that cause rather than the copy's. */
            chorus_result_t why = shm_health(s, q, 0, 0, 0);
            if (why != CHORUS_SUCCESS)
                return why;
            /* ESRCH/EFAULT: the peer is exiting (its pidfd not yet ready) or
             * its buffer is gone; either way rank q is the one to name. */
            chorus_result_t code =
                e == ESRCH || e == EFAULT ? CHORUS_REMOTE_ERROR : CHORUS_SYSTEM_ERROR;
            CHORUS_ERR(code, "%s: single-copy %s of %zu bytes %s rank %d failed: %s", s->label,
                       write ? "write" : "read", len, write ? "to" : "from",
                       shm_comm_rank(s, q), e ? strerror(e) : "no progress");
            return blame(s, q, code);
        }
        mine += got;
        remote += (uint64_t)got;
        len -= (size_t)got;
    }
    return CHORUS_SUCCESS;
}
