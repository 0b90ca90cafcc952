/*
 * perf_common.h - the shared engine of the nccl-tests-style perf tools.
 *
 * Each tool (all_reduce_perf.c, ...) only describes its collective in a
 * perf_coll_t: how the buffers are laid out for a given count, how to call
 * Chorus and the MPI equivalent, the bus-bandwidth factor and the value every
 * received element must hold. perf_main() does the rest: options, the size
 * sweep, checking, timing (Chorus and MPI interleaved), the table, JSON.
 *
 * Launch: mpirun -np N ./all_reduce_perf -b 8 -e 256M -f 4   (-h for options)
 */
#ifndef CHORUS_PERF_COMMON_H
#define CHORUS_PERF_COMMON_H

#include <stddef.h>

#include <mpi.h>

#include "chorus.h"

/* One run of one collective at one size: what the callbacks see. */
typedef struct perf_case {
    int rank, nranks;
    int root;                /* -r (rooted collectives), else -1 */
    chorus_comm_t comm;
    MPI_Comm mpi_comm;
    chorus_datatype_t type;
    chorus_op_t op;          /* meaningful only if the collective has an op */
    MPI_Datatype mpi_type;   /* MPI_DATATYPE_NULL: no MPI equivalent */
    MPI_Op mpi_op;           /* MPI_OP_NULL: no MPI equivalent (avg) */
    size_t type_size;
    size_t count;            /* the count argument of the call ("count" column) */
    /* Set by perf_coll_t.layout from count, in elements: */
    size_t send_elems;       /* elements of the send buffer */
    size_t recv_elems;       /* elements of the receive buffer */
    size_t ip_send_off;      /* in place: where the input starts in the one buffer */
    size_t ip_recv_off;      /* in place: where the output starts in the one buffer */
    /* Private to perf_common.c: the input value range for this case. */
    double pat_lo;
    unsigned long long pat_mask;
    int pat_prod;
} perf_case_t;

/* Describes one collective; each perf tool defines exactly one. */
typedef struct perf_coll {
    const char *name;        /* "all_reduce": the tool is <name>_perf */
    const char *chorus_call; /* "chorus_allreduce" */
    const char *mpi_call;    /* "MPI_Allreduce" */
    int has_op;              /* takes a reduction op (-o) */
    int has_root;            /* takes a root (-r) */
    int has_in_place;        /* has an in-place variant (else those columns read n/a) */
    int mpi_in_place;        /* the MPI call has one buffer (MPI_Bcast): compare it with
                                Chorus in place, the same work */
    int reduces_values;      /* 1: inputs must keep a reduction over all ranks exact */
    /* 1: S (the "size" column, algbw's numerator) is the whole buffer of all
     * ranks, count = S / (typesize * nranks); 0: S = count * typesize. */
    int whole_buffer;
    double (*busbw_factor)(int nranks);
    /* The highest busbw (GB/s) the memory system allows, from the probe's copy
     * rates in GB/s per rank (every rank copying at once; rank 0 alone): the
     * rate divided by the bytes each rank must copy per byte of busbw for the
     * out-of-place call. NULL: no model (no ceiling printed). */
    double (*busbw_ceiling)(int nranks, double copy_all, double copy_one);
    void (*layout)(perf_case_t *c);
    chorus_result_t (*run_chorus)(const perf_case_t *c, const void *sendbuf, void *recvbuf);
    /* Returns an MPI error code. Called only when c->mpi_type (and, with an
     * op, c->mpi_op) exist and counts fit in an int. */
    int (*run_mpi)(const perf_case_t *c, const void *sendbuf, void *recvbuf);
    /* Element i (< recv_elems) of this rank's receive buffer after the call:
     * sets *value and returns 1, or returns 0 if the call must leave it untouched. */
    int (*expected)(const perf_case_t *c, size_t i, double *value);
} perf_coll_t;

/* Element i of rank's input buffer: a small integer that the type holds
 * exactly, chosen so that reducing it over all ranks stays exact. */
double perf_input_value(const perf_case_t *c, int rank, size_t i);
/* c->op applied to element i of every rank's input, then divided for avg
 * (truncated for integers): what a reduction must produce. */
double perf_reduce_value(const perf_case_t *c, size_t i);

/* Runs the tool; returns the process exit status (0 all good, 1 wrong or
 * out-of-bounds values, 2 bad options, 3 a failed call). */
int perf_main(int argc, char **argv, const perf_coll_t *coll);

#endif
