"""Creating communicators: from a unique id, from torchrun-style environment
variables, or from an existing torch.distributed process group."""
import ctypes
import itertools
import os
import socket
import sys
import warnings

from . import _lib
from ._buffers import INT64, as_int
from .comm import Communicator
from .errors import ChorusArgumentError, ChorusError, REMOTE_ERROR, check

_exchange_counter = itertools.count()


def get_unique_id():
    """Makes a unique id (bytes) and starts the bootstrap root in this process.
    Send the bytes to every rank (any out-of-band channel), then every rank
    calls init_rank(nranks, uid, rank)."""
    uid = _lib.UniqueId()
    check(_lib.lib().chorus_get_unique_id(ctypes.byref(uid)), "chorus_get_unique_id")
    return ctypes.string_at(ctypes.addressof(uid), _lib.UNIQUE_ID_BYTES)


def init_rank(nranks, uid, rank):
    """Collective over the nranks ranks: this process becomes rank `rank`."""
    uid = bytes(uid)
    if len(uid) != _lib.UNIQUE_ID_BYTES:
        raise ChorusArgumentError("a unique id has %d bytes, got %d"
                                  % (_lib.UNIQUE_ID_BYTES, len(uid)), "chorus_comm_init_rank")
    nranks = as_int(nranks, "nranks", "chorus_comm_init_rank")
    rank = as_int(rank, "rank", "chorus_comm_init_rank")
    cid = _lib.UniqueId()
    ctypes.memmove(ctypes.addressof(cid), uid, len(uid))
    h = ctypes.c_void_p()
    check(_lib.lib().chorus_comm_init_rank(ctypes.byref(h), nranks, cid, rank),
          "chorus_comm_init_rank")
    return Communicator(h.value)


def _torch_dist():
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    import torch.distributed as dist
    return dist if dist.is_available() and dist.is_initialized() else None


def init_from_env():
    """A communicator of all ranks of a torchrun-style job.

    Reads CHORUS_ROOT_ADDR (host:port), CHORUS_RANK, CHORUS_NRANKS, or
    torchrun's MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE. MASTER_PORT may
    already be taken by torch's own TCPStore; then the unique id travels
    through that store instead:
      - torch.distributed already initialized: through its default group;
      - torchrun's agent store (TORCHELASTIC_USE_AGENT_STORE=True): through it;
      - otherwise rank 0 listens on MASTER_PORT (chorus_comm_init_env) until
        every rank has joined, and frees the port again.

    LOCAL_RANK (and LOCAL_WORLD_SIZE) are not needed: Chorus finds which
    ranks share a host itself, whatever the launcher, by comparing host ids
    (CHORUS_HOSTID if set, else the host name), and joins those ranks by
    shared memory. When torchrun's variables are set they are checked
    against what Chorus found: a RuntimeWarning says so if ranks that
    torchrun puts on one node are on different Chorus hosts (they would then
    talk over the network; usually CHORUS_HOSTID set differently on one
    machine), or if LOCAL_RANK is not an integer in 0..LOCAL_WORLD_SIZE-1.
    More host-mates than LOCAL_WORLD_SIZE (several torchrun agents on one
    host) is fine and not reported. This costs one small allgather.
    """
    if not os.environ.get("CHORUS_ROOT_ADDR"):
        if _torch_dist() is not None:
            comm = init_from_torch()
        elif os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            comm = _init_from_agent_store()
        else:
            comm = _init_env()
    else:
        comm = _init_env()
    try:
        _check_local_rank(comm)
    except BaseException:
        comm.abort()
        raise
    return comm


def _init_env():
    h = ctypes.c_void_p()
    check(_lib.lib().chorus_comm_init_env(ctypes.byref(h)), "chorus_comm_init_env")
    return Communicator(h.value)


def _host_name():
    """The host id Chorus groups ranks by (CHORUS_HOSTID, else the host name),
    for messages only: the grouping itself comes from chorus_comm_host."""
    return os.environ.get("CHORUS_HOSTID") or socket.gethostname()


def _env_count(name):
    """torchrun variable name as an int; -1 if unset, -2 if not a non-negative integer."""
    text = os.environ.get(name)
    if text is None or text == "":
        return -1
    try:
        v = int(text, 10)
    except ValueError:
        return -2
    return v if v >= 0 else -2


def _check_local_rank(comm):
    """Compares torchrun's LOCAL_RANK/LOCAL_WORLD_SIZE with the host-mates
    Chorus found (see init_from_env); warns, never fails."""
    host = _host_name()
    lr, lws = _env_count("LOCAL_RANK"), _env_count("LOCAL_WORLD_SIZE")
    n = comm.size
    mine = (ctypes.c_int64 * 3)(comm.host, lr, lws)
    every = (ctypes.c_int64 * (3 * n))()
    check(_lib.lib().chorus_allgather(ctypes.addressof(mine), ctypes.addressof(every), 3, INT64,
                                      comm._handle("chorus_allgather")), "chorus_allgather")
    rows = [tuple(every[3 * r:3 * r + 3]) for r in range(n)]
    if lr == -2 or lws == -2 or (lr >= 0 and lws >= 0 and lr >= lws):
        warnings.warn("chorus: rank %d: LOCAL_RANK=%r, LOCAL_WORLD_SIZE=%r are not what torchrun "
                      "sets (integers, LOCAL_RANK < LOCAL_WORLD_SIZE); Chorus does not use them "
                      "(it finds host-mates by host id)" % (comm.rank, os.environ.get("LOCAL_RANK"),
                                                           os.environ.get("LOCAL_WORLD_SIZE")),
                      RuntimeWarning, stacklevel=3)
    mates = [r for r in range(n) if rows[r][0] == comm.host]
    if mates[0] != comm.rank:
        return  # the lowest rank of each host speaks for it
    # The node size torchrun implies for each host-mate: LOCAL_WORLD_SIZE, or
    # at least LOCAL_RANK + 1.
    claims = [max(rows[r][2], rows[r][1] + 1) for r in mates if rows[r][1] >= 0 or rows[r][2] >= 0]
    if claims and max(claims) > len(mates):
        warnings.warn("chorus: Chorus finds %d rank(s) on host %r (ranks %s; host id = "
                      "CHORUS_HOSTID or the host name), but torchrun's LOCAL_RANK/"
                      "LOCAL_WORLD_SIZE say their node runs %d: either that node's other ranks "
                      "have another host id, and Chorus joins them over the network, not by "
                      "shared memory (set CHORUS_HOSTID alike, or not at all, on every rank of "
                      "a host), or these variables are wrong"
                      % (len(mates), host, _ranges(mates), max(claims)),
                      RuntimeWarning, stacklevel=3)


def _ranges(ranks):
    out, i = [], 0
    while i < len(ranks):
        j = i
        while j + 1 < len(ranks) and ranks[j + 1] == ranks[j] + 1:
            j += 1
        out.append(str(ranks[i]) if i == j else "%d-%d" % (ranks[i], ranks[j]))
        i = j + 1
    return ", ".join(out)


def _init_from_agent_store():
    from datetime import timedelta
    import torch.distributed as dist
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), size, False,
                          timedelta(seconds=int(os.environ.get("CHORUS_INIT_STORE_TIMEOUT", "300"))))
    # A key per restart and per communicator, so an elastic restart never
    # reads the id of a previous attempt.
    key = "chorus/uid/%s/%d" % (os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"),
                                next(_exchange_counter))
    if rank == 0:
        try:
            uid = get_unique_id()
        except ChorusError:
            store.set(key, b"")
            raise
        store.set(key, uid)
    else:
        uid = store.get(key)
        if not uid:
            raise ChorusError(REMOTE_ERROR, "rank 0 could not make a unique id", "init_from_env")
    return init_rank(size, uid, rank)


def init_from_torch(group=None):
    """A communicator with the ranks of a torch.distributed process group (the
    default group if None), in the group's rank order. Collective over the
    group; rank 0 makes the unique id, torch broadcasts it."""
    import torch.distributed as dist
    if not dist.is_initialized():
        raise ChorusError(2, "torch.distributed is not initialized (call "
                             "init_process_group first, or use chorus.init_from_env())",
                          "init_from_torch")
    rank, size = dist.get_rank(group), dist.get_world_size(group)
    uid, err = None, None
    if rank == 0:
        try:
            uid = get_unique_id()
        except ChorusError as e:
            err = e
    # Every rank must learn whether the root could make an id.
    box = [uid]
    c10d = dist.distributed_c10d
    global_rank = getattr(c10d, "get_global_rank", None) or c10d._get_global_rank
    src = 0 if group is None else global_rank(group, 0)
    dist.broadcast_object_list(box, src=src, group=group)
    if err is not None:
        raise err
    if box[0] is None:
        raise ChorusError(REMOTE_ERROR, "rank 0 could not make a unique id", "init_from_torch")
    return init_rank(size, box[0], rank)
