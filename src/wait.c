/* wait.c - spin, then yield, then futex sleep; bounded and health-checked. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "wait.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"
#include "tunables.h"

/* How often the health check runs while yielding or sleeping. */
#define CHECK_INTERVAL_NS 100000
/* Longest single futex sleep: bounds how late a death or abort is noticed. */
#define SLEEP_SLICE_NS 2000000

int64_t chorus_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void chorus_wait_policy_init(struct chorus_wait_policy *policy, int oversubscribed,
                             int timeout_ms)
{
    const struct chorus_tunables *t = chorus_tunables();
    long spin_us = t->SPIN_US;
    if (spin_us < 0)
        spin_us = oversubscribed ? 1 : 50;
    policy->spin_ns = (int64_t)spin_us * 1000;
    policy->yield_ns = (int64_t)(t->YIELD_US > 0 ? t->YIELD_US : 0) * 1000;
    if (policy->yield_ns < policy->spin_ns)
        policy->yield_ns = policy->spin_ns;
    policy->timeout_ns = timeout_ms > 0 ? (int64_t)timeout_ms * 1000000 : 0;
}

static int reached(_Atomic uint32_t *flag, uint32_t target)
{
    return chorus_serial_geq(atomic_load_explicit(flag, memory_order_acquire), target);
}

chorus_result_t chorus_wait_flag(_Atomic uint32_t *flag, uint32_t target,
                                 _Atomic uint32_t *sleepers,
                                 const struct chorus_wait_policy *policy,
                                 chorus_wait_check_fn check, void *check_arg)
{
    if (reached(flag, target))
        return CHORUS_SUCCESS;
    int64_t start = chorus_now_ns();
    int64_t now = start;
    /* Phase 1: spin, reading the clock only every 64 polls. */
    for (unsigned i = 1;; i++) {
        chorus_cpu_relax();
        if (reached(flag, target))
            return CHORUS_SUCCESS;
        if ((i & 63) == 0) {
            now = chorus_now_ns();
            if (now - start >= policy->spin_ns)
                break;
            if ((i & 1023) == 0)
                chorus_progress_run();
        }
    }
    /* The first health check comes after one interval: most waits end
     * sooner, and the check costs a system call. */
    int64_t next_check = now + CHECK_INTERVAL_NS;
    for (;;) {
        if (now >= next_check) {
            int timed_out = policy->timeout_ns > 0 && now - start >= policy->timeout_ns;
            chorus_result_t res = check ? check(check_arg, timed_out) : CHORUS_SUCCESS;
            if (res != CHORUS_SUCCESS)
                return res;
            if (timed_out)
                return CHORUS_TIMEOUT; /* check() is expected to have said who */
            next_check = now + CHECK_INTERVAL_NS;
        }
        chorus_progress_run();
        if (now - start < policy->yield_ns) {
            /* Phase 2: let the peer we wait for have our core. */
            sched_yield();
        } else {
            /* Phase 3: sleep. Announce ourselves first, then re-check, so a
             * writer that stores after our check sees sleepers > 0 (both
             * sides use sequentially consistent operations). */
            atomic_fetch_add(sleepers, 1);
            uint32_t seen = atomic_load(flag);
            if (!chorus_serial_geq(seen, target)) {
                /* with a progress hook, wake often enough to run it */
                struct timespec slice = {0, chorus_progress_set()
                                                ? CHORUS_PROGRESS_SLICE_MS * 1000000
                                                : SLEEP_SLICE_NS};
                syscall(SYS_futex, (uint32_t *)flag, FUTEX_WAIT, seen, &slice, NULL, 0);
            }
            atomic_fetch_sub(sleepers, 1);
            next_check = 0; /* a sleep slice is long: check health every time */
        }
        if (reached(flag, target))
            return CHORUS_SUCCESS;
        now = chorus_now_ns();
    }
}

void chorus_flag_store(_Atomic uint32_t *flag, uint32_t value, _Atomic uint32_t *sleepers)
{
    atomic_store(flag, value); /* seq_cst: ordered before the sleepers load */
    if (atomic_load(sleepers) != 0)
        syscall(SYS_futex, (uint32_t *)flag, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void chorus_flag_wake_all(_Atomic uint32_t *flag)
{
    syscall(SYS_futex, (uint32_t *)flag, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
