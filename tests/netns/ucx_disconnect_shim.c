/* tests/netns/ucx_disconnect_shim.c - LD_PRELOAD work-around for a hang in
 * MPI_Finalize of MPICH 4.0.x (ch4:ucx, as in Debian 12) over UCX's TCP
 * transport (UCX 1.13).
 *
 * MPICH 4.0.2's UCX netmod finalizes as: ucp_disconnect_nb() on every
 * endpoint, progress until all those requests complete, PMI barrier,
 * ucp_worker_destroy(). With UCX_TLS=tcp,... a flushing disconnect can need
 * the peer's progress, but a peer that has finished its own disconnects sits
 * in the PMI barrier and no longer progresses UCX: both wait forever. It
 * happened in 20-70% of runs of a trivial program with 2-4 "nodes" (also
 * without namespaces: MPIR_CVAR_NOLOCAL=1 UCX_TLS=tcp,self on one host).
 * Newer MPICH does the PMI barrier before the disconnects; cf. UCX issue
 * openucx/ucx#8738 ("TCP transport hangs during cleanup").
 *
 * This shim makes ucp_disconnect_nb() a no-op that reports immediate
 * success. The endpoints are then torn down by ucp_worker_destroy(), which
 * MPICH calls right after the PMI barrier - so only once every rank is in
 * MPI_Finalize, i.e. after every message of a correct program has been
 * received - and which does not wait for peers.
 *
 * ucp_disconnect_nb() is a deprecated UCX call that only MPICH's finalize
 * uses, so nothing else is affected. mpirun-nodes.sh builds this file and
 * passes it to the ranks only (mpiexec -genv LD_PRELOAD ...); set
 * CHORUS_NETNS_UCX_SHIM=0 to run without it.
 *
 * Build: cc -shared -fPIC -O2 -o ucx_disconnect_shim.so ucx_disconnect_shim.c
 * (no UCX headers needed: the signature is
 *  ucs_status_ptr_t ucp_disconnect_nb(ucp_ep_h ep), both pointers, and
 *  UCS_OK as a status pointer is NULL).
 */
#include <stddef.h>

void *ucp_disconnect_nb(void *ep);

void *ucp_disconnect_nb(void *ep)
{
    (void)ep;
    return NULL; /* UCS_OK: "completed in place", no request to wait for */
}
