/* chorus_mpi_types.c - which MPI datatypes and ops Chorus can take as they are.
 *
 * Reductions: the predefined C integer and floating types whose Chorus type
 * has the same size and meaning (MPI_SIGNED_CHAR/INT8_T, MPI_UNSIGNED_CHAR/
 * UINT8_T, int, unsigned, long, long long, their fixed-width names, MPI_AINT,
 * MPI_OFFSET, MPI_COUNT, float, double; MPICH's MPIX_C_FLOAT16) with MPI_SUM,
 * MPI_PROD, MPI_MIN, MPI_MAX. MPI_CHAR and MPI_BYTE are not valid in MPI
 * reductions; short, long double, complex, bool and the pair types have no
 * Chorus equivalent: MPI keeps those.
 *
 * Data movement (allgather, alltoall(v), bcast): any dense datatype,
 * predefined or derived, moves as bytes: one whose elements are plain
 * contiguous bytes (lower bound and true lower bound 0, extent == true
 * extent == size), so that count elements are exactly count * size bytes
 * from the buffer's start. A datatype of size 0 is dense whatever its
 * layout: it moves nothing. MPI lets ranks describe the same data with
 * different datatypes (MPI_INT x 6 on one rank, a contiguous type of 3
 * MPI_INT x 2 on another, or a zero-size type against a count of 0); since
 * the decision depends only on whether the type is dense, never on which
 * one it is, those ranks agree. Non-dense types (vectors, pair types with a
 * hole, resized types) go to MPI; a rank that describes the same data with
 * a non-dense type while another uses a dense one would disagree: a known
 * limit (docs/mpi-interposer.md). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <stddef.h>
#include <stdint.h>

#include "chorus_mpi_internal.h"

static int int_type(size_t size, int is_signed, chorus_datatype_t *out)
{
    switch (size) {
    case 1: *out = is_signed ? CHORUS_INT8 : CHORUS_UINT8; return 1;
    case 4: *out = is_signed ? CHORUS_INT32 : CHORUS_UINT32; return 1;
    case 8: *out = is_signed ? CHORUS_INT64 : CHORUS_UINT64; return 1;
    default: return 0;
    }
}

const char *cmpi_reduce_type(MPI_Datatype dt, chorus_datatype_t *out)
{
    static const char *const no_equivalent =
        "datatype has no Chorus equivalent for reductions (or is not valid in them)";
    /* signed integers */
    if (dt == MPI_SIGNED_CHAR || dt == MPI_INT8_T)
        return int_type(1, 1, out) ? NULL : no_equivalent;
    if (dt == MPI_INT)
        return int_type(sizeof(int), 1, out) ? NULL : no_equivalent;
    if (dt == MPI_INT32_T)
        return int_type(4, 1, out) ? NULL : no_equivalent;
    if (dt == MPI_LONG)
        return int_type(sizeof(long), 1, out) ? NULL : no_equivalent;
    if (dt == MPI_LONG_LONG || dt == MPI_LONG_LONG_INT)
        return int_type(sizeof(long long), 1, out) ? NULL : no_equivalent;
    if (dt == MPI_INT64_T)
        return int_type(8, 1, out) ? NULL : no_equivalent;
    if (dt == MPI_AINT)
        return int_type(sizeof(MPI_Aint), 1, out) ? NULL : no_equivalent;
    if (dt == MPI_OFFSET)
        return int_type(sizeof(MPI_Offset), 1, out) ? NULL : no_equivalent;
    if (dt == MPI_COUNT)
        return int_type(sizeof(MPI_Count), 1, out) ? NULL : no_equivalent;
    /* unsigned integers */
    if (dt == MPI_UNSIGNED_CHAR || dt == MPI_UINT8_T)
        return int_type(1, 0, out) ? NULL : no_equivalent;
    if (dt == MPI_UNSIGNED)
        return int_type(sizeof(unsigned), 0, out) ? NULL : no_equivalent;
    if (dt == MPI_UINT32_T)
        return int_type(4, 0, out) ? NULL : no_equivalent;
    if (dt == MPI_UNSIGNED_LONG)
        return int_type(sizeof(unsigned long), 0, out) ? NULL : no_equivalent;
    if (dt == MPI_UNSIGNED_LONG_LONG)
        return int_type(sizeof(unsigned long long), 0, out) ? NULL : no_equivalent;
    if (dt == MPI_UINT64_T)
        return int_type(8, 0, out) ? NULL : no_equivalent;
    /* floating point */
    if (dt == MPI_FLOAT) {
        *out = CHORUS_FLOAT32;
        return NULL;
    }
    if (dt == MPI_DOUBLE) {
        *out = CHORUS_FLOAT64;
        return NULL;
    }
#ifdef MPIX_C_FLOAT16
    if (dt == MPIX_C_FLOAT16) {
        *out = CHORUS_FLOAT16;
        return NULL;
    }
#endif
    int ni, na, nd, combiner;
    if (PMPI_Type_get_envelope(dt, &ni, &na, &nd, &combiner) == MPI_SUCCESS &&
        combiner != MPI_COMBINER_NAMED)
        return "datatype is derived, not predefined";
    return no_equivalent;
}

const char *cmpi_reduce_op(MPI_Op op, chorus_op_t *out)
{
    if (op == MPI_SUM)
        *out = CHORUS_SUM;
    else if (op == MPI_PROD)
        *out = CHORUS_PROD;
    else if (op == MPI_MIN)
        *out = CHORUS_MIN;
    else if (op == MPI_MAX)
        *out = CHORUS_MAX;
    else if (op == MPI_BAND || op == MPI_BOR || op == MPI_BXOR || op == MPI_LAND ||
             op == MPI_LOR || op == MPI_LXOR || op == MPI_MAXLOC || op == MPI_MINLOC ||
             op == MPI_REPLACE || op == MPI_NO_OP)
        return "op has no Chorus equivalent (Chorus has sum, prod, min, max)";
    else
        return "op is user-defined (MPI_Op_create)";
    return NULL;
}

const char *cmpi_bytes_type(MPI_Datatype dt, size_t *size)
{
    int ni, na, nd, combiner;
    if (dt == MPI_DATATYPE_NULL ||
        PMPI_Type_get_envelope(dt, &ni, &na, &nd, &combiner) != MPI_SUCCESS)
        return "datatype is not valid";
    MPI_Count sz, lb, extent, tlb, textent;
    if (PMPI_Type_size_x(dt, &sz) != MPI_SUCCESS ||
        PMPI_Type_get_extent_x(dt, &lb, &extent) != MPI_SUCCESS ||
        PMPI_Type_get_true_extent_x(dt, &tlb, &textent) != MPI_SUCCESS)
        return "datatype is not valid";
    if (sz == MPI_UNDEFINED || sz < 0)
        return "datatype size does not fit an MPI_Count";
    if (sz == 0) { /* moves nothing, whatever its layout */
        *size = 0;
        return NULL;
    }
    if (lb != 0 || tlb != 0 || extent != sz || textent != sz)
        return combiner == MPI_COMBINER_NAMED
                   ? "datatype is not dense (lower bound != 0 or extent != size), e.g. a "
                     "pair type"
                   : "datatype is derived and not dense (lower bound != 0 or extent != size)";
    if ((unsigned long long)sz > SIZE_MAX)
        return "datatype size overflows size_t";
    *size = (size_t)sz;
    return NULL;
}
