/* error.h - result codes with a readable, per-thread "last error" text and a
 * log line saying what went wrong and where. */
#ifndef CHORUS_ERROR_H
#define CHORUS_ERROR_H

#include <stddef.h>

#include "chorus.h"

/* Records the text as the calling thread's last error, logs it (at error
 * level for system/internal/remote/timeout failures, at warn level for bad
 * arguments and usage) and returns res, so callers write
 *     return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "count %zu too large", n);  */
chorus_result_t chorus_error_at(chorus_result_t res, const char *file, int line, const char *func,
                                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define CHORUS_ERR(res, ...) chorus_error_at((res), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* Sets the calling thread's last error text without logging (to hand an
 * error from the worker thread to the thread that waits for it). */
void chorus_error_restore(const char *text);
/* Copies the calling thread's last error text into dst. */
void chorus_error_save(char *dst, size_t cap);

/* Clears the calling thread's last error (called on entry to API calls). */
void chorus_error_clear(void);

/* Propagates a failure: evaluates expr once and returns its result if not
 * CHORUS_SUCCESS. */
#define CHORUS_CHECK(expr)                            \
    do {                                              \
        chorus_result_t check_res_ = (expr);          \
        if (check_res_ != CHORUS_SUCCESS)             \
            return check_res_;                        \
    } while (0)

#endif
