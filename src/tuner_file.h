/* tuner_file.h - tuning files: measured transport figures and rules that
 * replace the tuner's defaults (docs/tuner.md). */
#ifndef CHORUS_TUNER_FILE_H
#define CHORUS_TUNER_FILE_H

#include <stdint.h>
#include <stdio.h>

#include "tuner.h"

#define TUNING_MAX_RULES 64

struct tuning {
    struct tuner_figures figures; /* defaults where the file says nothing */
    struct tuner_rule rules[TUNING_MAX_RULES];
    int nrules;
    uint64_t hash; /* of the file's text */
};

/* Reads path into t. CHORUS_INVALID_ARGUMENT with "file:line: field: why"
 * in err on bad input. */
chorus_result_t tuning_read(const char *path, struct tuning *t, char *err, size_t errlen);
/* Writes t as a tuning file that tuning_read reads back. */
void tuning_write(FILE *f, const struct tuning *t, const char *comment);

#endif
