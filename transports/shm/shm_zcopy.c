/* shm_zcopy.c - zero copy between Chorus allocations (chorus_mem_alloc):
 * the step on which the ranks agree to use each other's buffers directly,
 * and the mappings of peers' allocations that make it possible.
 *
 * A peer's allocation is reached through its memfd: /proc/<pid>/fd/<fd>
 * opened here (the kernel allows it to the same user with ptrace access,
 * as it does process_vm_readv) and mapped read-only, since zero-copy
 * algorithms only ever read peers' buffers. Mappings are cached per peer and
 * allocation generation, so a buffer used again costs no system call, and a
 * freed-and-reallocated buffer (new generation) is never served a stale
 * mapping; a cached mapping keeps the old pages alive, so it cannot fault
 * either. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "shm/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

/* Mappings kept per peer: enough for the send and receive buffers of a few
 * alternating calls; the least recently used goes first. */
#define CACHE_PER_PEER 8

struct peer_mapping {
    uint64_t generation; /* 0: slot empty */
    void *base;
    size_t bytes;
    uint64_t last_use;
};

struct shm_zcopy_cache {
    struct peer_mapping *maps; /* [nranks * CACHE_PER_PEER] */
    const char **send, **recv; /* [nranks] each: the call's view */
    const void **srcs;         /* [nranks] */
    uint64_t clock;
};

static struct shm_zcopy_cache *cache_of(struct shm_comm *s)
{
    if (s->zcopy)
        return s->zcopy;
    struct shm_zcopy_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->maps = calloc((size_t)s->nranks * CACHE_PER_PEER, sizeof *c->maps);
    c->send = calloc((size_t)s->nranks, sizeof *c->send);
    c->recv = calloc((size_t)s->nranks, sizeof *c->recv);
    c->srcs = calloc((size_t)s->nranks, sizeof *c->srcs);
    if (!c->maps || !c->send || !c->recv || !c->srcs) {
        free(c->srcs);
        free(c->maps);
        free(c->send);
        free(c->recv);
        free(c);
        return NULL;
    }
    s->zcopy = c;
    return c;
}

void shm_zcopy_release(struct shm_comm *s)
{
    struct shm_zcopy_cache *c = s->zcopy;
    if (!c)
        return;
    for (size_t i = 0; i < (size_t)s->nranks * CACHE_PER_PEER; i++)
        if (c->maps[i].generation)
            munmap(c->maps[i].base, c->maps[i].bytes);
    free(c->maps);
    free(c->send);
    free(c->recv);
    free(c->srcs);
    free(c);
    s->zcopy = NULL;
}

/* Opens and maps rank q's allocation described by sp; NULL (logged) if the
 * kernel refuses or the file is not the allocation published. */
static void *map_allocation(struct shm_comm *s, int q, const struct chorus_mem_span *sp)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)s->pids[q], (int)sp->fd);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        LOG_INFO("shm", "%s: zero copy: cannot open rank %d's allocation %s: %s", s->label,
                 shm_comm_rank(s, q), path, strerror(errno));
        return NULL;
    }
    /* The fd number may have been reused since it was published, or the
     * process replaced: only the inode the owner saw is trusted. */
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_ino != sp->inode ||
        (uint64_t)st.st_dev != sp->dev || (uint64_t)st.st_size != sp->alloc_bytes) {
        LOG_INFO("shm", "%s: zero copy: %s is not the allocation rank %d published", s->label,
                 path, shm_comm_rank(s, q));
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, (size_t)sp->alloc_bytes, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd); /* the mapping holds the memfd */
    if (p == MAP_FAILED) {
        LOG_INFO("shm", "%s: zero copy: cannot map %llu bytes of rank %d's allocation: %s",
                 s->label, (unsigned long long)sp->alloc_bytes, shm_comm_rank(s, q),
                 strerror(e));
        return NULL;
    }
    return p;
}

/* Rank q's buffer of len bytes described by sp, as this process sees it;
 * NULL if it cannot be mapped. */
static const char *peer_buffer(struct shm_comm *s, struct shm_zcopy_cache *c, int q,
                               const struct chorus_mem_span *sp, uint64_t len)
{
    if (!sp->generation || sp->offset > sp->alloc_bytes || len > sp->alloc_bytes - sp->offset ||
        sp->alloc_bytes > SIZE_MAX)
        return NULL;
    struct peer_mapping *slots = c->maps + (size_t)q * CACHE_PER_PEER, *victim = slots;
    for (int i = 0; i < CACHE_PER_PEER; i++) {
        if (slots[i].generation == sp->generation && slots[i].bytes == sp->alloc_bytes) {
            slots[i].last_use = ++c->clock;
            return (const char *)slots[i].base + sp->offset;
        }
        if (!slots[i].generation || (victim->generation && slots[i].last_use < victim->last_use))
            victim = &slots[i];
    }
    void *base = map_allocation(s, q, sp);
    if (!base)
        return NULL;
    /* Nothing maps a cached allocation between calls, so any slot may go. */
    if (victim->generation)
        munmap(victim->base, victim->bytes);
    victim->generation = sp->generation;
    victim->base = base;
    victim->bytes = (size_t)sp->alloc_bytes;
    victim->last_use = ++c->clock;
    return (const char *)base + sp->offset;
}

/* Publishes where my buffers lie; whether all that peers need qualify. */
static int publish(struct shm_zcopy_note *note, const void *send, size_t send_len,
                   const void *recv, size_t recv_len, unsigned need)
{
    memset(note, 0, sizeof *note);
    int ok = 1;
    if (need & SHM_ZC_NEED_SEND)
        ok = chorus_mem_find(send, send_len, &note->span[SHM_ZC_SEND]);
    if (ok && (need & SHM_ZC_NEED_RECV))
        ok = chorus_mem_find(recv, recv_len, &note->span[SHM_ZC_RECV]);
    note->usable = (uint32_t)ok;
    return ok;
}

/* Maps every peer's buffers in need; whether all could be. The lengths are
 * every rank's alike (the collectives' arguments agree). */
static int map_peers(struct shm_comm *s, struct shm_zcopy_cache *c, uint32_t st,
                     size_t send_len, size_t recv_len, unsigned need)
{
    for (int q = 0; q < s->nranks; q++) {
        if (q == s->rank)
            continue;
        const struct shm_zcopy_note *note = &s->ctrl[q]->zcopy[st & 1];
        c->send[q] = c->recv[q] = NULL;
        if ((need & SHM_ZC_NEED_SEND) &&
            !(c->send[q] = peer_buffer(s, c, q, &note->span[SHM_ZC_SEND], send_len)))
            return 0;
        if ((need & SHM_ZC_NEED_RECV) &&
            !(c->recv[q] = peer_buffer(s, c, q, &note->span[SHM_ZC_RECV], recv_len)))
            return 0;
    }
    return 1;
}

static int all_set(struct shm_comm *s, uint32_t st, size_t field_offset)
{
    for (int q = 0; q < s->nranks; q++) {
        const char *note = (const char *)&s->ctrl[q]->zcopy[st & 1];
        if (!*(const uint32_t *)(note + field_offset))
            return 0;
    }
    return 1;
}

chorus_result_t shm_zcopy_begin(struct shm_comm *s, const void *send, size_t send_len,
                                const void *recv, size_t recv_len, unsigned need,
                                struct shm_zcopy_call *call, int *go)
{
    const int me = s->rank;
    *go = 0;
    struct shm_zcopy_cache *c = cache_of(s);
    uint32_t st = shm_next_step(s);
    CHORUS_CHECK(shm_reserve(s, st));
    struct shm_zcopy_note *mine = &s->ctrl[me]->zcopy[st & 1];
    /* Without the cache this rank cannot map anything: it says so. */
    publish(mine, send, send_len, recv, recv_len, need);
    if (!c)
        mine->usable = 0;
    shm_post(s, &s->ctrl[me]->ready, st);
    CHORUS_CHECK(shm_wait_all(s, SHM_READY, st));
    shm_mark_synced(s, st);
    if (all_set(s, st, offsetof(struct shm_zcopy_note, usable))) {
        mine->mapped = (uint32_t)map_peers(s, c, st, send_len, recv_len, need);
        /* Mapping can fail on one rank only: agree once more. */
        shm_post(s, &s->ctrl[me]->ready2, st);
        CHORUS_CHECK(shm_wait_all(s, SHM_READY2, st));
        if (all_set(s, st, offsetof(struct shm_zcopy_note, mapped))) {
            c->send[me] = send;
            c->recv[me] = recv;
            call->step = st;
            call->send = c->send;
            call->recv = c->recv;
            call->srcs = c->srcs;
            *go = 1;
            return CHORUS_SUCCESS;
        }
    }
    shm_post(s, &s->ctrl[me]->done, st);
    return CHORUS_SUCCESS;
}
