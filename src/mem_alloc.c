/* mem_alloc.c - chorus_mem_alloc / chorus_mem_free: page-aligned memory that
 * the other ranks of the node can map (see mem_alloc.h).
 *
 * Each allocation is one memfd (memfd_create + ftruncate + mmap MAP_SHARED).
 * The fd stays open until chorus_mem_free, as peers reach the memory
 * through it. Live allocations sit in a small array under a mutex; a
 * generation number, never reused, tells a peer's cached mapping of a freed
 * allocation from a new one that got the same fd number. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "mem_alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chorus.h"
#include "error.h"

struct allocation {
    char *base;
    size_t bytes; /* as mapped: the request rounded up to pages */
    struct chorus_mem_span span;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct allocation *registry;
static size_t registry_len, registry_cap;
static uint64_t last_generation;

static chorus_result_t registry_add(const struct allocation *a)
{
    chorus_result_t res = CHORUS_SUCCESS;
    pthread_mutex_lock(&registry_lock);
    if (registry_len == registry_cap) {
        size_t cap = registry_cap ? 2 * registry_cap : 16;
        struct allocation *grown = realloc(registry, cap * sizeof *grown);
        if (!grown)
            res = CHORUS_ERR(CHORUS_SYSTEM_ERROR, "chorus_mem_alloc: out of memory");
        else {
            registry = grown;
            registry_cap = cap;
        }
    }
    if (res == CHORUS_SUCCESS)
        registry[registry_len++] = *a;
    pthread_mutex_unlock(&registry_lock);
    return res;
}

chorus_result_t chorus_mem_alloc(void **ptr, size_t bytes)
{
    chorus_error_clear();
    if (!ptr)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_mem_alloc: ptr is NULL");
    *ptr = NULL;
    if (bytes == 0)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_mem_alloc: bytes is 0");
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096;
    if (bytes > SIZE_MAX - pg || bytes > (size_t)INT64_MAX - pg)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_mem_alloc: %zu bytes is too large",
                          bytes);
    size_t mapped = (bytes + pg - 1) / pg * pg;
    /* CLOEXEC: a child exec'd by the application must not keep it alive. */
    int fd = memfd_create("chorus-mem", MFD_CLOEXEC);
    if (fd < 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "chorus_mem_alloc: memfd_create failed: %s",
                          strerror(errno));
    struct stat st;
    if (ftruncate(fd, (off_t)mapped) != 0 || fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "chorus_mem_alloc: sizing a memfd to %zu bytes "
                          "failed: %s", mapped, strerror(e));
    }
    void *p = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "chorus_mem_alloc: mmap of %zu bytes failed: %s",
                          mapped, strerror(e));
    }
    struct allocation a = {.base = p, .bytes = mapped};
    a.span.alloc_bytes = mapped;
    a.span.inode = (uint64_t)st.st_ino;
    a.span.dev = (uint64_t)st.st_dev;
    a.span.fd = fd;
    pthread_mutex_lock(&registry_lock);
    a.span.generation = ++last_generation;
    pthread_mutex_unlock(&registry_lock);
    chorus_result_t res = registry_add(&a);
    if (res != CHORUS_SUCCESS) {
        munmap(p, mapped);
        close(fd);
        return res;
    }
    *ptr = p;
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_mem_free(void *ptr)
{
    chorus_error_clear();
    if (!ptr)
        return CHORUS_SUCCESS; /* as free(NULL) */
    struct allocation a;
    int found = 0;
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < registry_len; i++)
        if (registry[i].base == ptr) {
            a = registry[i];
            registry[i] = registry[--registry_len];
            found = 1;
            break;
        }
    pthread_mutex_unlock(&registry_lock);
    if (!found)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_mem_free: %p was not returned by "
                          "chorus_mem_alloc, or was already freed", ptr);
    /* A peer's mapping keeps the pages alive after this: it cannot fault. */
    int unmapped = munmap(a.base, a.bytes);
    int e = errno;
    close(a.span.fd);
    if (unmapped != 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "chorus_mem_free: munmap failed: %s",
                          strerror(e));
    return CHORUS_SUCCESS;
}

int chorus_mem_find(const void *buf, size_t len, struct chorus_mem_span *span)
{
    if (!buf || len == 0)
        return 0;
    uintptr_t lo = (uintptr_t)buf;
    int found = 0;
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < registry_len && !found; i++) {
        uintptr_t base = (uintptr_t)registry[i].base;
        if (lo >= base && lo - base <= registry[i].bytes &&
            len <= registry[i].bytes - (lo - base)) {
            *span = registry[i].span;
            span->offset = lo - base;
            found = 1;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return found;
}
