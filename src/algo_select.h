/* algo_select.h - the user's say in which algorithm runs a collective:
 * CHORUS_ALGO forces one per collective or excludes some. The tuner
 * (src/tuner.h) chooses among what is left. */
#ifndef CHORUS_ALGO_SELECT_H
#define CHORUS_ALGO_SELECT_H

#include <stddef.h>
#include <stdint.h>

#include "coll.h"
#include "plan.h"

#define ALGO_NKINDS (COLL_BARRIER + 1) /* collectives with algorithms */

struct algo_config {
    algo_t forced[ALGO_NKINDS];    /* ALGO_AUTO: the model decides */
    uint32_t excluded[ALGO_NKINDS]; /* bit a: algorithm a must not be used */
};

/* Parses a CHORUS_ALGO value ("allreduce:ring;alltoall:^bruck,direct;tree").
 * Unknown names, or forcing an algorithm on a collective that lacks it, are
 * CHORUS_INVALID_ARGUMENT with a text naming the entry. */
chorus_result_t algo_config_parse(struct algo_config *cfg, const char *text);

#endif
