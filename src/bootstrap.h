/* bootstrap.h - out-of-band TCP setup of a communicator.
 *
 * chorus_get_unique_id() starts a root (a thread in the calling process)
 * listening on a TCP socket; the unique id carries its address and a random
 * secret. Every rank connects to the root, proves it knows the secret, and
 * sends its own listening address; the root answers with every rank's
 * address; then each rank connects to its ring successor. After that the
 * root thread exits and the bootstrap offers collective helpers over the
 * ring (allgather, barrier) used at init, by comm split and by transports to
 * exchange setup data.
 */
#ifndef CHORUS_BOOTSTRAP_H
#define CHORUS_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>

#include "chorus.h"

struct chorus_bootstrap;

/* Starts a root listening on the interface chosen by CHORUS_SOCKET_IFNAME
 * and fills id. The root serves one communicator init and exits; it also
 * exits (closing its socket) if no init completes within the init timeout. */
chorus_result_t chorus_bootstrap_root_create(chorus_unique_id_t *id);

/* Env-var init: rank 0 starts a root listening on addr:port (host name or
 * numeric address); every rank gets the matching id. secret may be NULL
 * (then the id's secret is all zero and the handshake still checks it). */
chorus_result_t chorus_bootstrap_root_from_address(const char *host, int port, int is_root,
                                                   const char *secret,
                                                   chorus_unique_id_t *id);

/* Joins the communicator described by id. Blocks until all nranks joined or
 * timeout_ms passed (then CHORUS_TIMEOUT naming the ranks that never
 * arrived, as far as the root knows them). Later collectives keep that bound
 * until chorus_bootstrap_set_timeout. */
chorus_result_t chorus_bootstrap_init(struct chorus_bootstrap **bs, const chorus_unique_id_t *id,
                                      int rank, int nranks, int timeout_ms);

/* all[r * size .. (r+1) * size) receives rank r's mine, for every r. */
chorus_result_t chorus_bootstrap_allgather(struct chorus_bootstrap *bs, const void *mine,
                                           void *all, size_t size);
chorus_result_t chorus_bootstrap_barrier(struct chorus_bootstrap *bs);

/* Sets the bound used by later calls (operation timeout, ms; <= 0 unbounded). */
void chorus_bootstrap_set_timeout(struct chorus_bootstrap *bs, int timeout_ms);

/* Closes every socket and frees bs (NULL is accepted). */
void chorus_bootstrap_destroy(struct chorus_bootstrap *bs);

#endif
