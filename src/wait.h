/* wait.h - the one way Chorus waits for another process: spin briefly, then
 * yield the CPU, then sleep on a futex; every wait is bounded and runs a
 * health check (peer alive? aborted?) now and then.
 *
 * Spinning alone collapses when ranks outnumber cores (the peer we wait for
 * cannot run), and sleeping at once costs a ~35 us wake-up per step; this
 * three-phase policy keeps both cases fast. */
#ifndef CHORUS_WAIT_H
#define CHORUS_WAIT_H

#include <stdatomic.h>
#include <stdint.h>

#include "chorus.h"

struct chorus_wait_policy {
    int64_t spin_ns;    /* busy-poll this long first */
    int64_t yield_ns;   /* then sched_yield() until this much time has passed */
    int64_t timeout_ns; /* then futex sleeps until this much: <= 0 unbounded */
};

/* From CHORUS_SPIN_US / CHORUS_YIELD_US; spin is short when oversubscribed. */
void chorus_wait_policy_init(struct chorus_wait_policy *policy, int oversubscribed,
                             int timeout_ms);

/* Called about every 100 us while waiting (and at the deadline with
 * timed_out = 1): returns CHORUS_SUCCESS to keep waiting, or the error that
 * ends the wait (the callback records its text with CHORUS_ERR). */
typedef chorus_result_t (*chorus_wait_check_fn)(void *arg, int timed_out);

/* Waits until the serial number *flag has reached target (wrap-safe
 * comparison). *sleepers is the counter in the same shared segment that
 * writers look at to decide whether to wake anyone. */
chorus_result_t chorus_wait_flag(_Atomic uint32_t *flag, uint32_t target,
                                 _Atomic uint32_t *sleepers,
                                 const struct chorus_wait_policy *policy,
                                 chorus_wait_check_fn check, void *check_arg);

/* Publishes value in *flag (release) and wakes sleepers if there are any. */
void chorus_flag_store(_Atomic uint32_t *flag, uint32_t value, _Atomic uint32_t *sleepers);

/* Wakes every sleeper on flag (used by abort). */
void chorus_flag_wake_all(_Atomic uint32_t *flag);

/* Serial-number comparison: has a reached b? */
static inline int chorus_serial_geq(uint32_t a, uint32_t b) { return (int32_t)(a - b) >= 0; }

static inline void chorus_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

int64_t chorus_now_ns(void);

#endif
