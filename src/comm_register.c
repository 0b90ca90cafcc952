/* comm_register.c - chorus_comm_register / chorus_comm_deregister: memory
 * the application keeps registered with the RDMA devices across calls.
 *
 * The handle wraps the transport's registration (or nothing, when no RDMA
 * transport joins the ranks), so applications can register unconditionally.
 * Handles stay on a list of the communicator, so destroy releases what the
 * application forgot. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "error.h"
#include "rdma/rdma.h"
#include "transport.h"

#define REG_MAGIC 0x43524547u /* "CREG" */

struct chorus_registration {
    uint32_t magic;
    chorus_comm_t comm;
    void *rdma; /* the transport's handle; NULL without RDMA */
    struct chorus_registration *next;
};

static int over_rdma(chorus_comm_t comm)
{
    return comm->net && !strcmp(comm->net->ops->name, "rdma");
}

chorus_result_t chorus_comm_register(chorus_comm_t comm, void *buf, size_t bytes, void **handle)
{
    chorus_error_clear();
    CHORUS_CHECK(chorus_comm_check_usable(comm, "chorus_comm_register"));
    if (!handle)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_register: handle is NULL");
    *handle = NULL;
    if (!buf && bytes)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_register: buf is NULL for %zu "
                          "bytes", bytes);
    /* Queued nonblocking work runs on the worker thread, which drives the
     * transport; registration must not race with it. */
    CHORUS_CHECK(chorus_requests_drain(comm));
    struct chorus_registration *r = calloc(1, sizeof *r);
    if (!r)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    if (bytes && over_rdma(comm)) {
        chorus_result_t res = rdma_register(comm->net, buf, bytes, &r->rdma);
        if (res != CHORUS_SUCCESS) {
            free(r);
            return res;
        }
    }
    r->magic = REG_MAGIC;
    r->comm = comm;
    r->next = comm->registrations;
    comm->registrations = r;
    *handle = r;
    return CHORUS_SUCCESS;
}

static void release(struct chorus_registration *r)
{
    if (r->rdma)
        rdma_deregister(r->comm->net, r->rdma);
    r->magic = 0;
    free(r);
}

chorus_result_t chorus_comm_deregister(chorus_comm_t comm, void *handle)
{
    chorus_error_clear();
    if (!comm || comm->magic != CHORUS_COMM_MAGIC)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_deregister: comm is NULL or not "
                          "a live communicator");
    if (!handle)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_deregister: handle is NULL");
    /* Only handles on this communicator's list are dereferenced: a stale or
     * foreign handle is refused, not followed. */
    struct chorus_registration **at = &comm->registrations;
    while (*at && *at != handle)
        at = &(*at)->next;
    if (!*at)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_deregister: %p is not a "
                          "registration of %s (already released, or of another communicator?)",
                          handle, comm->label);
    CHORUS_CHECK(chorus_requests_drain(comm));
    struct chorus_registration *r = *at;
    *at = r->next;
    release(r);
    return CHORUS_SUCCESS;
}

void comm_release_registrations(chorus_comm_t comm)
{
    while (comm->registrations) {
        struct chorus_registration *r = comm->registrations;
        comm->registrations = r->next;
        release(r);
    }
}
