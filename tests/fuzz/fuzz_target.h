/* fuzz_target.h - what every Chorus fuzz target and the replay driver share.
 *
 * A target is one LLVMFuzzerTestOneInput (libFuzzer's entry point). The
 * same function is linked either with libFuzzer (configure --enable-fuzzing,
 * clang) to search for inputs, or with fuzz_replay.c (every build, gcc too)
 * to run the kept corpus as a regression test.
 */
#ifndef CHORUS_FUZZ_TARGET_H
#define CHORUS_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fixed secret and nonce of the root in fuzz_bootstrap_root.c, so that
 * seeds (fuzz_seeds.c) can carry a valid PROOF and the fuzzer gets past the
 * handshake to JOIN handling. */
#define FUZZ_ROOT_SECRET \
    { 0x63, 0x68, 0x6f, 0x72, 0x75, 0x73, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x6b, 0x65, 0x79, 0x21 }
#define FUZZ_ROOT_NONCE \
    { 0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f }

/* The library logs every rejected message; on millions of inputs that is
 * noise on the terminal and most of the run time. Logging still runs
 * (its formatting of hostile text is part of what is tested), into
 * /dev/null, unless the user set CHORUS_LOG_LEVEL / CHORUS_LOG_FILE. Must
 * run before the library reads its tunables (the first call of a target). */
static inline void fuzz_quiet_logs(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    setenv("CHORUS_LOG_LEVEL", "trace", 0);
    setenv("CHORUS_LOG_FILE", "/dev/null", 0);
}

#endif
