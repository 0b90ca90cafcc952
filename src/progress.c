/* progress.c - the per-thread progress hook (progress.h, chorus.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "progress.h"

#include "chorus.h"
#include "error.h"

_Thread_local struct chorus_progress_hook chorus_progress_tls;

chorus_result_t chorus_set_progress_hook(void (*fn)(void *arg), void *arg)
{
    chorus_error_clear();
    chorus_progress_tls.arg = arg;
    chorus_progress_tls.fn = fn;
    return CHORUS_SUCCESS;
}
