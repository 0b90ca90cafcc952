/* rdma_none.c - the RDMA entry points of a build without libibverbs and
 * librdmacm: the communicator calls the same functions either way and is
 * told why RDMA is unavailable. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>

#include "error.h"
#include "rdma.h"
#include "transport.h"

#define NOT_BUILT "Chorus was built without libibverbs/librdmacm (install libibverbs-dev " \
                  "librdmacm-dev and reconfigure)"

int rdma_transport_available(char *why, size_t cap)
{
    if (why && cap)
        snprintf(why, cap, "%s", NOT_BUILT);
    return 0;
}

chorus_result_t rdma_transport_create(struct transport **out, const struct transport_setup *setup)
{
    (void)setup;
    if (out)
        *out = NULL;
    return CHORUS_ERR(CHORUS_INVALID_USAGE, "RDMA transport requested, but %s", NOT_BUILT);
}

chorus_result_t rdma_register(struct transport *t, void *buf, size_t bytes, void **handle)
{
    (void)t;
    (void)buf;
    (void)bytes;
    if (handle)
        *handle = NULL;
    return CHORUS_ERR(CHORUS_INVALID_USAGE, "rdma_register: %s", NOT_BUILT);
}

chorus_result_t rdma_deregister(struct transport *t, void *handle)
{
    (void)t;
    (void)handle;
    return CHORUS_ERR(CHORUS_INVALID_USAGE, "rdma_deregister: %s", NOT_BUILT);
}

void rdma_forget(struct transport *t, const void *buf, size_t bytes)
{
    (void)t;
    (void)buf;
    (void)bytes;
}
