/* rdma.h - what the rest of the library may call of the RDMA transport
 * besides the two entry points in transport.h (no verbs types here, so the
 * communicator compiles the same with or without libibverbs). */
#ifndef CHORUS_RDMA_H
#define CHORUS_RDMA_H

#include <stddef.h>

#include "chorus.h"
#include "transport.h"

/* Registers [buf, buf + bytes) with the transport's device for as long as
 * the caller holds *handle (chorus_comm_register). Transfers from or into
 * the range then skip the registration cache's lookup misses. t must come
 * from rdma_transport_create. */
chorus_result_t rdma_register(struct transport *t, void *buf, size_t bytes, void **handle);
/* Releases a handle of rdma_register: the memory is unregistered at once,
 * or when the last transfer using it completes; registrations the cache
 * holds for the same range are dropped too, so the memory may be freed. */
chorus_result_t rdma_deregister(struct transport *t, void *handle);
/* Drops every cached registration overlapping [buf, buf + bytes) (those in
 * use go when their transfer ends): call it before freeing or reallocating
 * memory that may have been transferred while CHORUS_RDMA_MR_CACHE keeps
 * registrations. Does nothing unless t is an RDMA transport. */
void rdma_forget(struct transport *t, const void *buf, size_t bytes);

#endif
