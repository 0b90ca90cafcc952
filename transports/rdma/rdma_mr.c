/* rdma_mr.c - the cache of memory registrations of the RDMA transport.
 *
 * Registering memory pins it and costs about as much as copying it, so
 * rendezvous buffers are registered once and the registration is kept:
 * page-aligned regions, refcounted by the transfers using them, the unused
 * ones evicted least recently used first once the registered total passes
 * CHORUS_RDMA_MR_CACHE (0: dropped as soon as unused). Regions the user
 * registered explicitly (rdma_register) stay until deregistered.
 *
 * The hazard every registration cache has: if the application frees a
 * cached buffer and the allocator maps new memory at the same address, the
 * old registration still points at the old pages, and data would land in
 * them. Nothing here can see that happen (no allocator hooks, and ODP is
 * not universal), so keeping registrations is opt-in (the bound defaults
 * to 0); explicit registrations are the fast path, and deregistering (or
 * rdma_forget) drops every registration of the range.
 *
 * Lookups walk the list (most recently used first); the cache holds a few
 * dozen regions in practice.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "rdma_impl.h"

static uintptr_t page_size(void)
{
    static uintptr_t ps;
    if (!ps) {
        long v = sysconf(_SC_PAGESIZE);
        ps = v > 0 ? (uintptr_t)v : 4096;
    }
    return ps;
}

void rdma_mr_cache_init(struct rdma_mr_cache *c, struct ibv_pd *pd, size_t cap,
                        const char *label)
{
    memset(c, 0, sizeof *c);
    c->pd = pd;
    c->cap = cap;
    c->label = label;
}

static void unlink_mr(struct rdma_mr_cache *c, struct rdma_mr *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        c->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        c->tail = m->prev;
    m->prev = m->next = NULL;
}

static void push_front(struct rdma_mr_cache *c, struct rdma_mr *m)
{
    m->prev = NULL;
    m->next = c->head;
    if (c->head)
        c->head->prev = m;
    else
        c->tail = m;
    c->head = m;
}

static void drop(struct rdma_mr_cache *c, struct rdma_mr *m)
{
    unlink_mr(c, m);
    c->bytes -= m->end - m->start;
    c->count--;
    c->evictions++;
    if (m->mr && ibv_dereg_mr(m->mr) != 0)
        LOG_WARN("rdma", "%s: deregistering %zu bytes at %p failed: %s", c->label,
                 (size_t)(m->end - m->start), (void *)m->start, strerror(errno));
    free(m);
}

/* Evicts unused regions, oldest first, until the total fits the bound
 * (all of them when all is set). */
static void trim(struct rdma_mr_cache *c, int all)
{
    struct rdma_mr *m = c->tail;
    while (m && (all || c->bytes > c->cap)) {
        struct rdma_mr *prev = m->prev;
        if (m->refs == 0)
            drop(c, m);
        m = prev;
    }
}

static struct ibv_mr *reg(struct rdma_mr_cache *c, uintptr_t start, size_t len, int *writable,
                          int *err)
{
    int flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
    struct ibv_mr *mr = ibv_reg_mr(c->pd, (void *)start, len, flags);
    *writable = 1;
    if (!mr && (errno == EFAULT || errno == EACCES || errno == EPERM)) {
        /* Read-only memory (a const send buffer) pins without write access;
         * it can still be the source of a send. */
        *err = errno;
        mr = ibv_reg_mr(c->pd, (void *)start, len, 0);
        *writable = 0;
    }
    if (!mr)
        *err = errno;
    return mr;
}

static struct rdma_mr *find(struct rdma_mr_cache *c, uintptr_t a, uintptr_t b, int write)
{
    for (struct rdma_mr *m = c->head; m; m = m->next)
        if (!m->doomed && m->start <= a && b <= m->end && (m->writable || !write))
            return m;
    return NULL;
}

chorus_result_t rdma_mr_get(struct rdma_mr_cache *c, const void *buf, size_t len, int write,
                            struct rdma_mr **out)
{
    uintptr_t a = (uintptr_t)buf, b = a + (len ? len : 1);
    struct rdma_mr *m = find(c, a, b, write);
    if (m) {
        c->hits++;
        m->refs++;
        unlink_mr(c, m);
        push_front(c, m);
        *out = m;
        return CHORUS_SUCCESS;
    }
    c->misses++;
    uintptr_t ps = page_size();
    uintptr_t start = a & ~(ps - 1), end = (b + ps - 1) & ~(ps - 1);
    int writable = 0, err = 0;
    struct ibv_mr *mr = reg(c, start, end - start, &writable, &err);
    if (!mr && (err == ENOMEM || err == EAGAIN) && c->bytes > 0) {
        /* Out of pinnable memory (RLIMIT_MEMLOCK): give back what we hold. */
        trim(c, 1);
        mr = reg(c, start, end - start, &writable, &err);
    }
    if (!mr || (write && !writable)) {
        if (mr)
            ibv_dereg_mr(mr);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR,
                          "%s: registering %zu bytes at %p with the RDMA device failed: %s%s",
                          c->label, len, buf, strerror(err),
                          err == ENOMEM || err == EAGAIN
                              ? " (locked-memory limit too low? see ulimit -l)"
                          : write && mr ? " (the receive buffer is read-only memory)"
                                        : "");
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        ibv_dereg_mr(mr);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", c->label);
    }
    m->start = start;
    m->end = end;
    m->mr = mr;
    m->refs = 1;
    m->writable = writable;
    push_front(c, m);
    c->bytes += end - start;
    c->count++;
    trim(c, 0);
    *out = m;
    return CHORUS_SUCCESS;
}

void rdma_mr_put(struct rdma_mr_cache *c, struct rdma_mr *m)
{
    if (!m)
        return;
    if (--m->refs > 0)
        return;
    if (m->doomed)
        drop(c, m);
    else
        trim(c, 0);
}

void rdma_mr_invalidate(struct rdma_mr_cache *c, const void *buf, size_t len)
{
    uintptr_t a = (uintptr_t)buf, b = a + len;
    struct rdma_mr *m = c->head;
    while (m) {
        struct rdma_mr *next = m->next;
        if (m->start < b && a < m->end && !m->user) {
            if (m->refs == 0)
                drop(c, m);
            else
                m->doomed = 1;
        }
        m = next;
    }
}

void rdma_mr_cache_destroy(struct rdma_mr_cache *c)
{
    while (c->head)
        drop(c, c->head);
}

/* ---- explicit registration ------------------------------------------------------------- */

chorus_result_t rdma_register(struct transport *base, void *buf, size_t bytes, void **handle)
{
    struct rdma_transport *t = (struct rdma_transport *)base;
    if (!t || !handle || (!buf && bytes))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "rdma_register: %s is NULL",
                          !t ? "the transport" : !handle ? "handle" : "buf");
    *handle = NULL;
    if (t->base.ops != &rdma_transport_ops)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "rdma_register: not an RDMA transport");
    struct rdma_mr_cache *c = &t->mrc;
    uintptr_t a = (uintptr_t)buf, b = a + (bytes ? bytes : 1), ps = page_size();
    uintptr_t start = a & ~(ps - 1), end = (b + ps - 1) & ~(ps - 1);
    int writable = 0, err = 0;
    struct ibv_mr *mr = reg(c, start, end - start, &writable, &err);
    if (!mr)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR,
                          "%s: registering %zu bytes at %p with the RDMA device failed: %s",
                          t->label, bytes, buf, strerror(err));
    struct rdma_mr *m = calloc(1, sizeof *m);
    if (!m) {
        ibv_dereg_mr(mr);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", t->label);
    }
    m->start = start;
    m->end = end;
    m->mr = mr;
    m->refs = 1; /* the user's: never evicted while held */
    m->user = 1;
    m->writable = writable;
    push_front(c, m);
    c->bytes += end - start;
    c->count++;
    *handle = m;
    return CHORUS_SUCCESS;
}

chorus_result_t rdma_deregister(struct transport *base, void *handle)
{
    struct rdma_transport *t = (struct rdma_transport *)base;
    if (!t || t->base.ops != &rdma_transport_ops)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "rdma_deregister: not an RDMA transport");
    struct rdma_mr_cache *c = &t->mrc;
    struct rdma_mr *m = c->head;
    while (m && m != handle)
        m = m->next;
    if (!m || !m->user)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT,
                          "%s: %p is not a registration handle of this communicator", t->label,
                          handle);
    m->user = 0;
    m->doomed = 1;
    uintptr_t start = m->start, end = m->end;
    rdma_mr_put(c, m); /* the user's reference; freed now unless in flight */
    /* The user may free the memory next: no registration of it may stay. */
    rdma_mr_invalidate(c, (void *)start, end - start);
    return CHORUS_SUCCESS;
}

void rdma_forget(struct transport *base, const void *buf, size_t bytes)
{
    struct rdma_transport *t = (struct rdma_transport *)base;
    if (t && t->base.ops == &rdma_transport_ops && t->pd)
        rdma_mr_invalidate(&t->mrc, buf, bytes);
}
