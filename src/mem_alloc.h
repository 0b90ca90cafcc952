/* mem_alloc.h - the process-wide registry of chorus_mem_alloc allocations,
 * as the shared-memory collectives see it.
 *
 * chorus_mem_alloc backs each allocation by its own memfd, kept open for the
 * allocation's lifetime, so a peer process on the node can open it through
 * /proc/<pid>/fd/<fd> and map the same pages: collectives then load and
 * store peers' buffers directly (zero copy). */
#ifndef CHORUS_MEM_ALLOC_H
#define CHORUS_MEM_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/* What a peer needs to map the allocation holding a buffer and to check
 * that the file it opened is that allocation. */
struct chorus_mem_span {
    uint64_t generation; /* unique per allocation in this process, never 0 */
    uint64_t alloc_bytes; /* size of the whole allocation (the memfd's size) */
    uint64_t offset;      /* of the buffer from the allocation's base */
    uint64_t inode, dev;  /* of the memfd (fstat) */
    int32_t fd;           /* the memfd's number in the owner */
    int32_t pad;
};

/* Whether [buf, buf + len) lies entirely inside one live Chorus allocation;
 * if so fills *span. len 0 never qualifies. Thread safe. */
int chorus_mem_find(const void *buf, size_t len, struct chorus_mem_span *span);

#endif
