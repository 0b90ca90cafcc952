/* error.c - result code names and the per-thread last error text. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static _Thread_local char last_error[1024];

static const char *const result_names[CHORUS_NUM_RESULTS] = {
    [CHORUS_SUCCESS] = "success",
    [CHORUS_INVALID_ARGUMENT] = "invalid argument",
    [CHORUS_INVALID_USAGE] = "invalid usage",
    [CHORUS_SYSTEM_ERROR] = "system error",
    [CHORUS_INTERNAL_ERROR] = "internal error",
    [CHORUS_REMOTE_ERROR] = "remote error",
    [CHORUS_TIMEOUT] = "timeout",
    [CHORUS_IN_PROGRESS] = "in progress",
};

const char *chorus_get_error_string(chorus_result_t result)
{
    if ((unsigned)result >= CHORUS_NUM_RESULTS)
        return "unknown result code";
    return result_names[result];
}

const char *chorus_get_last_error(void) { return last_error; }

void chorus_error_clear(void) { last_error[0] = '\0'; }

void chorus_error_restore(const char *text) { snprintf(last_error, sizeof last_error, "%s", text); }

void chorus_error_save(char *dst, size_t cap) { snprintf(dst, cap, "%s", last_error); }

chorus_result_t chorus_error_at(chorus_result_t res, const char *file, int line, const char *func,
                                const char *fmt, ...)
{
    char text[sizeof last_error - 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    snprintf(last_error, sizeof last_error, "%s: %s (in %s)", chorus_get_error_string(res), text,
             func);
    chorus_log_level_t lvl = (res == CHORUS_INVALID_ARGUMENT || res == CHORUS_INVALID_USAGE)
                                 ? CHORUS_LOG_WARN
                                 : CHORUS_LOG_ERROR;
    if (lvl <= chorus_log_level())
        chorus_log_at(lvl, "api", file, line, "%s", last_error);
    return res;
}
