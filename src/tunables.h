/* tunables.h - typed access to the tunables declared in tunables.def. */
#ifndef CHORUS_TUNABLES_H
#define CHORUS_TUNABLES_H

#include <stddef.h>
#include "chorus.h"

typedef enum { CHORUS_TUNABLE_INT, CHORUS_TUNABLE_SIZE, CHORUS_TUNABLE_BOOL, CHORUS_TUNABLE_STR }
    chorus_tunable_kind_t;

#define CHORUS_TUNABLE_CTYPE_INT long
#define CHORUS_TUNABLE_CTYPE_SIZE size_t
#define CHORUS_TUNABLE_CTYPE_BOOL int
#define CHORUS_TUNABLE_CTYPE_STR const char *

/* The values in force, read from the environment once (first call wins). */
struct chorus_tunables {
#define CHORUS_TUNABLE(name, kind, def, help) CHORUS_TUNABLE_CTYPE_##kind name;
#include "tunables.def"
#undef CHORUS_TUNABLE
};

/* Parses every CHORUS_* variable once. A malformed value is an error
 * (CHORUS_INVALID_ARGUMENT, naming the variable), not a silent default. */
chorus_result_t chorus_tunables_load(const struct chorus_tunables **out);
/* The table after a successful load; defaults if loading failed. */
const struct chorus_tunables *chorus_tunables(void);

/* Description of one tunable, for chorus_info and tests. */
struct chorus_tunable_desc {
    const char *name; /* without the CHORUS_ prefix */
    chorus_tunable_kind_t kind;
    const char *default_text;
    const char *help;
};
size_t chorus_tunable_count(void);
const struct chorus_tunable_desc *chorus_tunable_get(size_t i);

/* Parsers, exposed for unit tests. Return 0 on success, -1 on bad text. */
int chorus_parse_size(const char *text, size_t *out);
int chorus_parse_int(const char *text, long *out);
int chorus_parse_bool(const char *text, int *out);

#endif
