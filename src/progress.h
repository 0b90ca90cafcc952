/* progress.h - the calling thread's progress hook (chorus_set_progress_hook):
 * every wait inside a blocking call runs it now and then, so a library the
 * application also uses (MPI, for the interposer) keeps moving while Chorus
 * waits for a peer that may need that library's progress first. */
#ifndef CHORUS_PROGRESS_H
#define CHORUS_PROGRESS_H

struct chorus_progress_hook {
    void (*fn)(void *arg);
    void *arg;
};

extern _Thread_local struct chorus_progress_hook chorus_progress_tls;

/* Longest a wait blocks in the kernel while a hook is set (ms). */
#define CHORUS_PROGRESS_SLICE_MS 1

static inline int chorus_progress_set(void) { return chorus_progress_tls.fn != 0; }

/* Runs the hook if this thread has one. The hook must not call Chorus; a
 * nested wait it might trigger would find it cleared. */
static inline void chorus_progress_run(void)
{
    struct chorus_progress_hook h = chorus_progress_tls;
    if (h.fn) {
        chorus_progress_tls.fn = 0;
        h.fn(h.arg);
        chorus_progress_tls.fn = h.fn;
    }
}

#endif
