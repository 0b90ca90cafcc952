/* fuzz_replay.c - runs a fuzz target's LLVMFuzzerTestOneInput over kept
 * inputs, without libFuzzer, so every build (gcc, clang, the sanitizer build
 * of CI) replays the corpus as a regression test.
 *
 * Usage: fuzz_replay_<target> PATH...
 * Each PATH is a file or a directory whose regular files (not starting with
 * '.') are each one input, in name order. Every input is read into a buffer
 * of exactly its size (as libFuzzer does, so the sanitizers see any read
 * past its end). Prints the name of each input before running it, so the
 * last line names the culprit of a crash. Exits 1 when nothing was
 * replayed (a missing corpus must fail, not pass silently).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_target.h"

static int replay_file(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_replay: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fprintf(stderr, "fuzz_replay: cannot stat %s\n", path);
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf || (size && fread(buf, 1, size, f) != size)) {
        fprintf(stderr, "fuzz_replay: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    fprintf(stderr, "fuzz_replay: %s (%zu bytes)\n", path, size);
    (void)LLVMFuzzerTestOneInput(buf, size);
    free(buf);
    (*count)++;
    return 0;
}

static int keep_entry(const struct dirent *e) { return e->d_name[0] != '.'; }

static int replay_path(const char *path, size_t *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path, count);
    struct dirent **names;
    int n = scandir(path, &names, keep_entry, alphasort);
    if (n < 0) {
        fprintf(stderr, "fuzz_replay: cannot list %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, names[i]->d_name);
        struct stat fs;
        if (rc == 0 && stat(full, &fs) == 0 && S_ISREG(fs.st_mode))
            rc = replay_file(full, count);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (replay_path(argv[i], &count) != 0)
            return 1;
    if (count == 0) {
        fprintf(stderr, "fuzz_replay: no inputs found in the given paths\n");
        return 1;
    }
    printf("fuzz_replay: %zu inputs replayed without a failure\n", count);
    return 0;
}
