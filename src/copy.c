/* copy.c - memcpy, or non-temporal stores for large outputs (see copy.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "copy.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "tunables.h"

enum { COPY_PLAIN, COPY_AVX2, COPY_AVX512 };
static int copy_kind = COPY_PLAIN;
static size_t stream_min;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void detect(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        copy_kind = COPY_AVX512;
    else if (__builtin_cpu_supports("avx2"))
        copy_kind = COPY_AVX2;
    stream_min = chorus_tunables()->NT_COPY_MIN;
}

int chorus_copy_streaming(size_t total_bytes)
{
    pthread_once(&once, detect);
    return stream_min > 0 && total_bytes >= stream_min;
}

/* Both stream 256 bytes per iteration from a 64-byte aligned destination;
 * the unaligned head and tail go through memcpy. */
__attribute__((target("avx512f"))) static void stream_avx512(char *dst, const char *src,
                                                              size_t n)
{
    for (; n >= 256; n -= 256, dst += 256, src += 256) {
        __m512i a = _mm512_loadu_si512((const void *)src);
        __m512i b = _mm512_loadu_si512((const void *)(src + 64));
        __m512i c = _mm512_loadu_si512((const void *)(src + 128));
        __m512i d = _mm512_loadu_si512((const void *)(src + 192));
        _mm512_stream_si512((void *)dst, a);
        _mm512_stream_si512((void *)(dst + 64), b);
        _mm512_stream_si512((void *)(dst + 128), c);
        _mm512_stream_si512((void *)(dst + 192), d);
    }
}

__attribute__((target("avx2"))) static void stream_avx2(char *dst, const char *src, size_t n)
{
    for (; n >= 256; n -= 256, dst += 256, src += 256)
        for (int k = 0; k < 256; k += 32)
            _mm256_stream_si256((__m256i *)(dst + k),
                                _mm256_loadu_si256((const __m256i *)(src + k)));
}

void chorus_copy(void *dst, const void *src, size_t len, int streaming)
{
    pthread_once(&once, detect);
    if (!streaming || copy_kind == COPY_PLAIN || len < 4096) {
        memcpy(dst, src, len);
        return;
    }
    char *d = dst;
    const char *s = src;
    size_t head = (64 - ((uintptr_t)d & 63)) & 63;
    memcpy(d, s, head);
    d += head;
    s += head;
    len -= head;
    size_t body = len & ~(size_t)255;
    if (copy_kind == COPY_AVX512)
        stream_avx512(d, s, body);
    else
        stream_avx2(d, s, body);
    /* Streaming stores are weakly ordered: fence before anyone is told the
     * data is there. */
    _mm_sfence();
    memcpy(d + body, s + body, len - body);
}
