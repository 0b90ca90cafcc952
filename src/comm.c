/* comm.c - creating, splitting, aborting and destroying communicators. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "comm.h"
#include "topo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bootstrap.h"
#include "error.h"
#include "log.h"
#include "node.h"
#include "reduce.h"
#include "shm/shm.h"
#include "transport.h"
#include "tunables.h"
#include "watchdog.h"

/* What every rank tells the others at init. */
struct peer_info {
    uint64_t host_id;
    uint64_t agree_hash; /* of the tunables every rank must share */
    int32_t pid;
    int32_t npus;
    int32_t package, numa; /* of its binding, -1 when it spans several */
    uint64_t cpus[CHORUS_NODE_CPU_WORDS]; /* the CPUs it may run on */
    struct watchdog_card watchdog; /* where its straggler watchdog listens */
};

/* CPUs the ranks on my host may run on between them (the union of their
 * masks; at least my own count, as CPUs from 1024 on are not in the masks). */
static int host_pus(const struct peer_info *peers, int nranks, uint64_t host_id, int my_pus)
{
    int n = 0;
    for (int w = 0; w < CHORUS_NODE_CPU_WORDS; w++) {
        uint64_t any = 0;
        for (int q = 0; q < nranks; q++)
            if (peers[q].host_id == host_id)
                any |= peers[q].cpus[w];
        n += __builtin_popcountll(any);
    }
    return n > my_pus ? n : my_pus;
}

/* Tunables that change which messages a rank sends: ranks that disagree on
 * them would wait on each other forever, so init refuses the mix. */
static uint64_t agree_hash(const struct chorus_tunables *t, uint64_t tuning_hash)
{
    const char *parts[] = {t->ALGO, "\n", t->TRANSPORT, t->CHECK_CALLS ? "\ncheck" : ""};
    uint64_t h = 1469598103934665603ull ^ tuning_hash; /* FNV-1a */
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        for (const char *c = parts[i]; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ull;
    return h;
}

chorus_result_t chorus_get_unique_id(chorus_unique_id_t *id)
{
    chorus_error_clear();
    if (!id)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "id is NULL");
    CHORUS_CHECK(chorus_tunables_load(NULL));
    return chorus_bootstrap_root_create(id);
}

chorus_result_t chorus_comm_check_usable(chorus_comm_t comm, const char *what)
{
    if (!comm)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: comm is NULL", what);
    if (comm->magic != CHORUS_COMM_MAGIC)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: comm is not a live communicator "
                          "(destroyed or corrupted?)", what);
    if (atomic_load(&comm->aborted))
        return CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: %s was aborted", what, comm->label);
    int broken = atomic_load(&comm->async_error);
    if (broken != CHORUS_SUCCESS)
        return CHORUS_ERR((chorus_result_t)broken, "%s: %s is unusable after an earlier "
                          "failure (%s); destroy it", what, comm->label,
                          chorus_get_error_string((chorus_result_t)broken));
    return CHORUS_SUCCESS;
}

void chorus_comm_fail(chorus_comm_t comm, chorus_result_t res)
{
    int expected = CHORUS_SUCCESS;
    if (!atomic_compare_exchange_strong(&comm->async_error, &expected, (int)res))
        return;
    /* Whom to blame, as a communicator rank: the peer the network or shared
     * memory saw fail, else this rank. Both the node-mates (shared memory)
     * and the other hosts are told, so ranks waiting on this one report the
     * root cause rather than "rank r gave up". */
    int blame = comm->net ? comm->net->blame : -1;
    if (blame < 0 && comm->shm && comm->shm->blame >= 0)
        blame = comm->shm->blame; /* a communicator rank (shm.h) */
    if (comm->shm) {
        if (comm->shm->blame < 0 && blame >= 0) {
            comm->shm->blame = blame;
            comm->shm->blame_code = comm->net->blame_code;
        }
        shm_comm_abort(comm->shm);
    }
    if (comm->net)
        comm->net->ops->fail(comm->net, blame >= 0 ? blame : comm->rank, res);
}

static chorus_result_t check_config(const chorus_config_t *config, int *timeout_ms,
                                    int *init_timeout_ms, const char **name)
{
    const struct chorus_tunables *t = chorus_tunables();
    *timeout_ms = (int)t->TIMEOUT_MS;
    *init_timeout_ms = (int)t->INIT_TIMEOUT_MS;
    *name = NULL;
    if (!config)
        return CHORUS_SUCCESS;
    if (config->magic != CHORUS_CONFIG_MAGIC || config->size < sizeof(chorus_config_t))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "config was not set up with "
                          "CHORUS_CONFIG_INITIALIZER (magic %#x, size %zu)", config->magic,
                          config->size);
    if (config->blocking != 1)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "config.blocking must be 1 (nonblocking "
                          "init is not supported)");
    if (config->timeout_ms > 0)
        *timeout_ms = config->timeout_ms;
    if (config->init_timeout_ms > 0)
        *init_timeout_ms = config->init_timeout_ms;
    *name = config->name;
    return CHORUS_SUCCESS;
}

/* Groups the ranks by host id (see struct comm_layout). */
static chorus_result_t layout_build(chorus_comm_t comm, const struct peer_info *peers)
{
    struct comm_layout *l = &comm->layout;
    const int n = comm->nranks;
    uint64_t *hosts = calloc((size_t)n, sizeof *hosts);
    int *count = calloc((size_t)n, sizeof *count);
    l->rank_host = calloc((size_t)n, sizeof *l->rank_host);
    l->rank_local = calloc((size_t)n, sizeof *l->rank_local);
    l->identity = calloc((size_t)n, sizeof *l->identity);
    l->rank_package = calloc((size_t)n, sizeof *l->rank_package);
    l->rank_numa = calloc((size_t)n, sizeof *l->rank_numa);
    if (!hosts || !count || !l->rank_host || !l->rank_local || !l->identity || !l->rank_package ||
        !l->rank_numa) {
        free(hosts);
        free(count);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    }
    for (int r = 0; r < n; r++) {
        int h = 0;
        while (h < l->nhosts && hosts[h] != peers[r].host_id)
            h++;
        if (h == l->nhosts)
            hosts[l->nhosts++] = peers[r].host_id;
        l->rank_host[r] = h;
        l->rank_local[r] = count[h]++;
        l->identity[r] = r;
        l->rank_package[r] = peers[r].package;
        l->rank_numa[r] = peers[r].numa;
    }
    l->host = l->rank_host[comm->rank];
    l->local_rank = l->rank_local[comm->rank];
    l->local_size = count[l->host];
    l->ppn = count[0];
    for (int h = 1; h < l->nhosts; h++)
        if (count[h] != l->ppn)
            l->ppn = 0;
    free(hosts);
    free(count);
    l->local_ranks = calloc((size_t)l->local_size, sizeof *l->local_ranks);
    if (!l->local_ranks)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    for (int r = 0; r < n; r++)
        if (l->rank_host[r] == l->host)
            l->local_ranks[l->rank_local[r]] = r;
    if (l->ppn > 0) {
        l->grid = calloc((size_t)n, sizeof *l->grid);
        l->cross = calloc((size_t)l->nhosts, sizeof *l->cross);
        if (!l->grid || !l->cross)
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
        for (int r = 0; r < n; r++)
            l->grid[l->rank_host[r] * l->ppn + l->rank_local[r]] = r;
        for (int h = 0; h < l->nhosts; h++)
            l->cross[h] = l->grid[h * l->ppn + l->local_rank];
    }
    /* who shares my host, socket and NUMA node (ranks bound within one) */
    int same_pkg = 0, same_numa = 0, me = comm->rank;
    for (int i = 0; i < l->local_size; i++) {
        int r = l->local_ranks[i];
        same_pkg += l->rank_package[me] >= 0 && l->rank_package[r] == l->rank_package[me];
        same_numa += l->rank_numa[me] >= 0 && l->rank_numa[r] == l->rank_numa[me];
    }
    LOG_DEBUG("init", "%s: host %d of %d, local rank %d of %d (%s); %d of them in my package "
              "%d, %d in my NUMA node %d (0: not bound within one)", comm->label, l->host,
              l->nhosts, l->local_rank, l->local_size,
              l->ppn ? "same number of ranks on every host" : "hosts differ in rank count",
              same_pkg, l->rank_package[me], same_numa, l->rank_numa[me]);
    return CHORUS_SUCCESS;
}

static void layout_free(struct comm_layout *l)
{
    free(l->rank_host);
    free(l->rank_local);
    free(l->local_ranks);
    free(l->grid);
    free(l->cross);
    free(l->identity);
    free(l->rank_package);
    free(l->rank_numa);
    memset(l, 0, sizeof *l);
}

/* The shared-memory setup of a host's ranks rides on the bootstrap's
 * allgather over every rank (all hosts set up at the same time, so the
 * calls line up) and keeps the entries of the host's own ranks. */
static chorus_result_t host_allgather(void *ctx, const void *mine, void *all, size_t size)
{
    chorus_comm_t comm = ctx;
    char *every = malloc((size_t)comm->nranks * (size ? size : 1));
    if (!every)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    chorus_result_t res = chorus_bootstrap_allgather(comm->bs, mine, every, size);
    for (int i = 0; res == CHORUS_SUCCESS && i < comm->layout.local_size; i++)
        memcpy((char *)all + (size_t)i * size,
               every + (size_t)comm->layout.local_ranks[i] * size, size);
    free(every);
    return res;
}

static chorus_result_t all_allgather(void *ctx, const void *mine, void *all, size_t size)
{
    return chorus_bootstrap_allgather(ctx, mine, all, size);
}

/* RDMA joins the hosts when forced (CHORUS_TRANSPORT=rdma) or, by default,
 * when every rank has a usable device; else TCP. The ranks exchange what
 * they found (one allgather), so all choose alike, and a forced RDMA that a
 * rank cannot do fails on every rank at once, naming it. */
static chorus_result_t pick_network(chorus_comm_t comm, const char *mode, int *use_rdma)
{
    *use_rdma = 0;
    if (!strcmp(mode, "tcp"))
        return CHORUS_SUCCESS;
    char why[160];
    int32_t mine = rdma_transport_available(why, sizeof why);
    int32_t *all = calloc((size_t)comm->nranks, sizeof *all);
    if (!all)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    chorus_result_t res = chorus_bootstrap_allgather(comm->bs, &mine, all, sizeof mine);
    int lacking = -1;
    for (int q = 0; res == CHORUS_SUCCESS && q < comm->nranks && lacking < 0; q++)
        if (!all[q])
            lacking = q;
    free(all);
    CHORUS_CHECK(res);
    if (lacking >= 0 && !strcmp(mode, "rdma"))
        return CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: CHORUS_TRANSPORT=rdma, but rank %d has no "
                          "usable RDMA device%s%s", comm->label, lacking,
                          lacking == comm->rank ? ": " : " (see its log)",
                          lacking == comm->rank ? why : "");
    *use_rdma = lacking < 0;
    if (*use_rdma)
        LOG_INFO("init", "%s: RDMA between hosts (device %s)", comm->label, why);
    else
        LOG_INFO("init", "%s: TCP between hosts (rank %d has no usable RDMA device%s%s)",
                 comm->label, lacking, lacking == comm->rank ? ": " : "",
                 lacking == comm->rank ? why : "");
    return CHORUS_SUCCESS;
}

/* A word-valued tunable must be one of its words (space-separated in
 * choices): a typo is an error, never a silent default. */
static chorus_result_t check_choice(const char *name, const char *value, const char *choices)
{
    size_t len = strlen(value);
    for (const char *c = choices; len > 0 && *c;) {
        size_t n = strcspn(c, " ");
        if (n == len && !strncasecmp(c, value, len))
            return CHORUS_SUCCESS;
        c += n + (c[n] == ' ');
    }
    return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "CHORUS_%s='%s': use one of: %s", name, value,
                      choices);
}

static chorus_result_t connect_ranks(chorus_comm_t comm, const chorus_unique_id_t *id)
{
    const struct chorus_tunables *t = chorus_tunables();
    const char *mode = t->TRANSPORT;
    CHORUS_CHECK(check_choice("TRANSPORT", mode, "auto tcp rdma shm"));
    CHORUS_CHECK(check_choice("CMA", t->CMA, "auto on off"));
    CHORUS_CHECK(check_choice("OVERSUBSCRIBED", t->OVERSUBSCRIBED, "auto yes no"));
    CHORUS_CHECK(algo_config_parse(&comm->algos, t->ALGO));
    comm->check_calls = (int)t->CHECK_CALLS;
    CHORUS_CHECK(chorus_bootstrap_init(&comm->bs, id, comm->rank, comm->nranks,
                                       comm->init_timeout_ms));
    CHORUS_CHECK(comm_tuning_load(comm));
    const struct chorus_node_info *node = chorus_node_info();
    struct peer_info mine = {0, agree_hash(t, comm_tuning_hash(comm)), (int32_t)getpid(),
                             node->npus, node->package, node->numa, {0}, {{0}, {0}}};
    memcpy(mine.cpus, node->cpus, sizeof mine.cpus);
    CHORUS_CHECK(chorus_node_host_id(&mine.host_id));
    watchdog_prepare(comm, id, &mine.watchdog);
    struct peer_info *peers = calloc((size_t)comm->nranks, sizeof *peers);
    if (!peers)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    chorus_result_t res = chorus_bootstrap_allgather(comm->bs, &mine, peers, sizeof mine);
    if (res == CHORUS_SUCCESS && comm->wd) {
        struct watchdog_card *cards = calloc((size_t)comm->nranks, sizeof *cards);
        for (int q = 0; cards && q < comm->nranks; q++)
            cards[q] = peers[q].watchdog;
        res = cards ? watchdog_learn(comm, cards)
                    : CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
        free(cards);
    }
    for (int q = 0; res == CHORUS_SUCCESS && q < comm->nranks; q++)
        if (peers[q].agree_hash != mine.agree_hash)
            res = CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: rank %d runs with other CHORUS_ALGO, "
                             "CHORUS_TRANSPORT, CHORUS_CHECK_CALLS or tuning file settings "
                             "than this rank "
                             "(ALGO='%s', TRANSPORT='%s', CHECK_CALLS=%d); every rank must use "
                             "the same", comm->label, q, t->ALGO, t->TRANSPORT,
                             (int)t->CHECK_CALLS);
    if (res == CHORUS_SUCCESS)
        res = layout_build(comm, peers);
    int other_host = -1;
    for (int q = 0; res == CHORUS_SUCCESS && q < comm->nranks; q++)
        if (peers[q].host_id != peers[0].host_id && other_host < 0)
            other_host = q;
    if (res == CHORUS_SUCCESS && other_host >= 0 && !strcmp(mode, "shm"))
        res = CHORUS_ERR(CHORUS_INVALID_USAGE,
                         "%s: ranks 0 and %d are on different hosts (host ids %016llx and "
                         "%016llx) but CHORUS_TRANSPORT=shm joins ranks of one node only",
                         comm->label, other_host, (unsigned long long)peers[0].host_id,
                         (unsigned long long)peers[other_host].host_id);
    const int pus = res == CHORUS_SUCCESS
                        ? host_pus(peers, comm->nranks, mine.host_id, node->npus) : 1;
    free(peers);
    CHORUS_CHECK(res);
    const struct comm_layout *l = &comm->layout;
    int forced_net = !strcmp(mode, "tcp") || !strcmp(mode, "rdma");
    int use_net = l->nhosts > 1 || forced_net;
    int use_shm = !forced_net;
    /* Ranks outnumbering cores must not spin: the one we wait for needs our
     * core. Counted against the CPUs the host's ranks may run on between
     * them: ranks bound one per core (Open MPI's and Slurm's default) have a
     * core each, though each process sees only one. */
    int oversubscribed = !strcasecmp(t->OVERSUBSCRIBED, "auto")
                             ? l->local_size > pus
                             : !strcasecmp(t->OVERSUBSCRIBED, "yes");
    if (use_shm) {
        struct shm_exchange xg = {host_allgather, comm};
        if (l->nhosts == 1)
            xg = (struct shm_exchange){all_allgather, comm->bs};
        CHORUS_CHECK(shm_comm_create(&comm->shm, &xg, l->local_rank, l->local_size,
                                     oversubscribed, comm->timeout_ms, &comm->aborted));
        comm->shm->label = comm->label;
        comm->shm->comm_ranks = l->local_ranks;
    }
    if (use_net) {
        chorus_wait_policy_init(&comm->net_policy, oversubscribed, comm->timeout_ms);
        struct transport_setup setup = {
            .rank = comm->rank, .nranks = comm->nranks, .need_peer = NULL,
            .allgather = all_allgather, .allgather_ctx = comm->bs,
            .timeout_ms = comm->init_timeout_ms, .label = comm->label,
            .abort_flag = &comm->aborted,
        };
        int use_rdma;
        CHORUS_CHECK(pick_network(comm, mode, &use_rdma));
        CHORUS_CHECK(use_rdma ? rdma_transport_create(&comm->net, &setup)
                              : tcp_transport_create(&comm->net, &setup));
        comm->net->blame = -1;
        CHORUS_CHECK(comm_tuner_setup(comm, use_shm, use_rdma));
    }
    for (int k = 0; use_net && k < ALGO_NKINDS; k++)
        if (comm->algos.forced[k] == ALGO_HIER && !(use_shm && l->nhosts > 1 && l->ppn > 1) &&
            !comm->pos_rank /* a topology file of these ranks composes hier itself */) {
            LOG_WARN("init", "%s: CHORUS_ALGO forces hier, but %s: the cost model chooses "
                     "flat algorithms instead", comm->label,
                     !use_shm          ? "CHORUS_TRANSPORT=tcp/rdma leaves no shared memory"
                     : l->nhosts == 1  ? "all ranks are on one host"
                     : l->ppn == 0     ? "the hosts hold different numbers of ranks"
                                       : "each host holds one rank");
            break;
        }
    /* No rank leaves init before every rank's transports are set up: one
     * that did could destroy the communicator at once, and a peer still
     * finishing its RDMA setup would see the connection close and fail
     * (seen in the soft-RoCE guest: a split, then destroy). */
    CHORUS_CHECK(chorus_bootstrap_barrier(comm->bs));
    chorus_bootstrap_set_timeout(comm->bs, comm->timeout_ms);
    return CHORUS_SUCCESS;
}

static void free_comm(chorus_comm_t comm)
{
    watchdog_free(comm); /* first: its thread reads the communicator */
    chorus_requests_stop(comm);
    comm_release_registrations(comm);
    if (comm->net)
        comm->net->ops->destroy(comm->net);
    shm_comm_destroy(comm->shm);
    layout_free(&comm->layout);
    plan_free(&comm->plan);
    comm_tuner_free(comm);
    plan_exec_cache_free(&comm->exec_cache); /* after the transport: no registration left */
    free(comm->hier_tmp);
    chorus_bootstrap_destroy(comm->bs);
    pthread_mutex_destroy(&comm->qlock);
    pthread_cond_destroy(&comm->qcond);
    pthread_cond_destroy(&comm->donecond);
    comm->magic = 0;
    free(comm);
}

chorus_result_t chorus_comm_init_rank_config(chorus_comm_t *out, int nranks,
                                             chorus_unique_id_t id, int rank,
                                             const chorus_config_t *config)
{
    chorus_error_clear();
    if (!out)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "comm (the output pointer) is NULL");
    *out = NULL;
    CHORUS_CHECK(chorus_tunables_load(NULL));
    if (nranks < 1)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "nranks is %d; it must be at least 1", nranks);
    if (rank < 0 || rank >= nranks)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "rank %d is outside 0..%d", rank, nranks - 1);
    int timeout_ms, init_timeout_ms;
    const char *name;
    CHORUS_CHECK(check_config(config, &timeout_ms, &init_timeout_ms, &name));
    CHORUS_CHECK(chorus_reduce_init());

    chorus_comm_t comm = calloc(1, sizeof *comm);
    if (!comm)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    comm->magic = CHORUS_COMM_MAGIC;
    comm->rank = rank;
    comm->nranks = nranks;
    comm->timeout_ms = timeout_ms;
    comm->init_timeout_ms = init_timeout_ms;
    /* The id's first bytes differ per communicator: a short tag for logs. */
    unsigned tag = 0;
    for (size_t i = 0; i < sizeof id.internal; i++)
        tag = tag * 31u + (unsigned char)id.internal[i];
    snprintf(comm->label, sizeof comm->label, "comm %s%s%08x rank %d/%d", name ? name : "",
             name ? ":" : "", tag, rank, nranks);
    pthread_mutex_init(&comm->qlock, NULL);
    pthread_cond_init(&comm->qcond, NULL);
    pthread_cond_init(&comm->donecond, NULL);

    chorus_result_t res = connect_ranks(comm, &id);
    if (res == CHORUS_SUCCESS)
        res = watchdog_start(comm);
    if (res != CHORUS_SUCCESS) {
        free_comm(comm);
        return res;
    }
    LOG_INFO("init", "%s ready: %d ranks on %d host(s) (%s), reduce kernels %s", comm->label,
             nranks, comm->layout.nhosts,
             comm->net && comm->shm ? "shared memory inside, network between"
             : comm->net            ? "network between every pair"
                                    : "shared memory",
             chorus_reduce_isa());
    *out = comm;
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_comm_init_rank(chorus_comm_t *comm, int nranks, chorus_unique_id_t id,
                                      int rank)
{
    return chorus_comm_init_rank_config(comm, nranks, id, rank, NULL);
}

/* Splits "host:port" or "[v6]:port". */
static chorus_result_t parse_host_port(const char *text, char *host, size_t cap, int *port)
{
    const char *colon;
    size_t hlen;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "root address '%s' is not [addr]:port",
                              text);
        hlen = (size_t)(close - text - 1);
        text++;
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "root address '%s' is not host:port",
                              text);
        hlen = (size_t)(colon - text);
    }
    long p;
    if (hlen == 0 || hlen >= cap || chorus_parse_int(colon + 1, &p) != 0 || p < 1 || p > 65535)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "root address '%s': bad host or port", text);
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return CHORUS_SUCCESS;
}

/* CHORUS_<ours>, else the torchrun name (RANK, WORLD_SIZE). */
static chorus_result_t env_int(const char *ours, long *out)
{
    char name[64];
    snprintf(name, sizeof name, "CHORUS_%s", ours);
    const char *theirs = strcmp(ours, "RANK") == 0 ? "RANK" : "WORLD_SIZE";
    const char *text = getenv(name);
    if (!text || !text[0]) {
        snprintf(name, sizeof name, "%s", theirs);
        text = getenv(theirs);
    }
    if (!text)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_init_env: set CHORUS_%s or %s",
                          ours, theirs);
    if (chorus_parse_int(text, out) != 0 || *out < 0)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_init_env: %s='%s' is not a "
                          "non-negative integer", name, text);
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_comm_init_env(chorus_comm_t *comm)
{
    chorus_error_clear();
    if (!comm)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "comm (the output pointer) is NULL");
    *comm = NULL;
    CHORUS_CHECK(chorus_tunables_load(NULL));
    char host[256];
    int port = 0;
    /* Read at call time, not from the table loaded at the first init: a
     * launcher or test may set them later in the process's life. */
    const char *root_addr = getenv("CHORUS_ROOT_ADDR"), *secret = getenv("CHORUS_SECRET");
    if (root_addr && root_addr[0]) {
        CHORUS_CHECK(parse_host_port(root_addr, host, sizeof host, &port));
    } else {
        const char *addr = getenv("MASTER_ADDR"), *p = getenv("MASTER_PORT");
        long pv;
        if (!addr || !p)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_init_env: set "
                              "CHORUS_ROOT_ADDR=host:port or MASTER_ADDR and MASTER_PORT");
        if (strlen(addr) >= sizeof host || chorus_parse_int(p, &pv) != 0 || pv < 1 || pv > 65535)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_init_env: bad MASTER_ADDR "
                              "'%s' or MASTER_PORT '%s'", addr, p);
        snprintf(host, sizeof host, "%s", addr);
        port = (int)pv;
    }
    long rank, nranks;
    CHORUS_CHECK(env_int("RANK", &rank));
    CHORUS_CHECK(env_int("NRANKS", &nranks));
    if (nranks < 1 || nranks > (1 << 20) || rank >= nranks)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_init_env: rank %ld of %ld ranks",
                          rank, nranks);
    chorus_unique_id_t id;
    CHORUS_CHECK(chorus_bootstrap_root_from_address(host, port, rank == 0,
                                                    secret && secret[0] ? secret : NULL, &id));
    return chorus_comm_init_rank(comm, (int)nranks, id, (int)rank);
}

struct split_info {
    int32_t color, key;
};
struct split_id {
    chorus_unique_id_t id;
    int32_t ok;
};

chorus_result_t chorus_comm_split(chorus_comm_t comm, int color, int key, chorus_comm_t *newcomm)
{
    chorus_error_clear();
    CHORUS_CHECK(chorus_comm_check_usable(comm, "chorus_comm_split"));
    if (!newcomm)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_split: newcomm is NULL");
    *newcomm = NULL;
    CHORUS_CHECK(chorus_requests_drain(comm));
    const int n = comm->nranks;
    struct split_info mine = {color < 0 ? -1 : color, key}, *all = calloc((size_t)n, sizeof *all);
    struct split_id *ids = calloc((size_t)n, sizeof *ids);
    if (!all || !ids) {
        free(all);
        free(ids);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    }
    chorus_result_t res = chorus_bootstrap_allgather(comm->bs, &mine, all, sizeof mine);
    int leader = -1, newrank = 0, size = 0;
    for (int q = 0; res == CHORUS_SUCCESS && mine.color >= 0 && q < n; q++) {
        if (all[q].color != mine.color)
            continue;
        if (leader < 0)
            leader = q;
        size++;
        if (all[q].key < key || (all[q].key == key && q < comm->rank))
            newrank++;
    }
    /* The lowest rank of each color starts the new communicator's root. */
    struct split_id my_id;
    memset(&my_id, 0, sizeof my_id);
    my_id.ok = 1;
    if (res == CHORUS_SUCCESS && leader == comm->rank)
        my_id.ok = chorus_get_unique_id(&my_id.id) == CHORUS_SUCCESS;
    if (res == CHORUS_SUCCESS)
        res = chorus_bootstrap_allgather(comm->bs, &my_id, ids, sizeof my_id);
    if (res == CHORUS_SUCCESS && mine.color >= 0) {
        if (!ids[leader].ok) {
            res = CHORUS_ERR(CHORUS_REMOTE_ERROR, "chorus_comm_split: rank %d could not start "
                             "the new communicator's bootstrap", leader);
        } else {
            chorus_config_t config = CHORUS_CONFIG_INITIALIZER;
            config.timeout_ms = comm->timeout_ms;
            config.init_timeout_ms = comm->init_timeout_ms;
            res = chorus_comm_init_rank_config(newcomm, size, ids[leader].id, newrank, &config);
        }
    }
    free(all);
    free(ids);
    if (res != CHORUS_SUCCESS && res != CHORUS_INVALID_ARGUMENT)
        chorus_comm_fail(comm, res);
    return res;
}

chorus_result_t chorus_comm_finalize(chorus_comm_t comm)
{
    chorus_error_clear();
    if (!comm || comm->magic != CHORUS_COMM_MAGIC)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_finalize: comm is NULL or not "
                          "a live communicator");
    return chorus_requests_drain(comm);
}

chorus_result_t chorus_comm_destroy(chorus_comm_t comm)
{
    chorus_error_clear();
    if (!comm || comm->magic != CHORUS_COMM_MAGIC)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_destroy: comm is NULL or not a "
                          "live communicator");
    /* Outstanding requests finish (or fail, bounded by the timeout) first:
     * their buffers and the segments must outlive them. */
    chorus_requests_drain(comm);
    free_comm(comm);
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_comm_abort(chorus_comm_t comm)
{
    chorus_error_clear();
    if (!comm || comm->magic != CHORUS_COMM_MAGIC)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_abort: comm is NULL or not a "
                          "live communicator");
    atomic_store(&comm->aborted, 1);
    int expected = CHORUS_SUCCESS;
    atomic_compare_exchange_strong(&comm->async_error, &expected, (int)CHORUS_INVALID_USAGE);
    if (comm->shm)
        shm_comm_abort(comm->shm);
    if (comm->net) /* peers on other hosts fail fast instead of timing out */
        comm->net->ops->fail(comm->net, comm->rank, CHORUS_INVALID_USAGE);
    watchdog_stop(comm); /* returns at once: the thread sleeps on a wake-up descriptor too */
    LOG_INFO("abort", "%s aborted by the application", comm->label);
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_comm_get_async_error(chorus_comm_t comm, chorus_result_t *async_error)
{
    if (!comm || comm->magic != CHORUS_COMM_MAGIC || !async_error)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_get_async_error: NULL or dead "
                          "comm, or NULL async_error");
    *async_error = (chorus_result_t)atomic_load(&comm->async_error);
    if (*async_error == CHORUS_SUCCESS) {
        /* healthy, but a collective may be held up by stragglers: say who */
        char text[1024];
        int n;
        if (watchdog_report(comm, NULL, 0, &n, text, sizeof text) != 0) {
            *async_error = CHORUS_IN_PROGRESS;
            chorus_error_restore(text);
        }
    }
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_comm_get_stragglers(chorus_comm_t comm, uint64_t *collective, int *ranks,
                                           int max_ranks, int *nranks_out)
{
    if (collective)
        *collective = 0;
    if (nranks_out)
        *nranks_out = 0;
    if (!comm || comm->magic != CHORUS_COMM_MAGIC)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_get_stragglers: comm is NULL "
                          "or not a live communicator");
    if (!collective || !nranks_out)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_get_stragglers: %s is NULL",
                          !collective ? "collective" : "nranks_out");
    if (max_ranks < 0)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_get_stragglers: max_ranks is "
                          "%d; it must be >= 0", max_ranks);
    if (!ranks && max_ranks > 0)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_get_stragglers: ranks is NULL "
                          "with max_ranks %d (NULL is allowed only with 0)", max_ranks);
    *collective = watchdog_report(comm, ranks, max_ranks, nranks_out, NULL, 0);
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_comm_count(chorus_comm_t comm, int *count)
{
    if (!comm || comm->magic != CHORUS_COMM_MAGIC || !count)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_count: NULL or dead comm, or "
                          "NULL count");
    *count = comm->nranks;
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_comm_rank(chorus_comm_t comm, int *rank)
{
    if (!comm || comm->magic != CHORUS_COMM_MAGIC || !rank)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_rank: NULL or dead comm, or "
                          "NULL rank");
    *rank = comm->rank;
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_comm_host(chorus_comm_t comm, int *host, int *nhosts, int *local_rank,
                                 int *local_count)
{
    if (!comm || comm->magic != CHORUS_COMM_MAGIC)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_comm_host: NULL or dead comm");
    const struct comm_layout *l = &comm->layout;
    if (host)
        *host = l->host;
    if (nhosts)
        *nhosts = l->nhosts;
    if (local_rank)
        *local_rank = l->local_rank;
    if (local_count)
        *local_count = l->local_size;
    return CHORUS_SUCCESS;
}
