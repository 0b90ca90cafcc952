"""Creating communicators: from a unique id, from torchrun-style environment
variables, or from an existing torch.distributed process group."""
import ctypes
import itertools
import os
import sys

from . import _lib
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
    cid = _lib.UniqueId()
    ctypes.memmove(ctypes.addressof(cid), uid, len(uid))
    h = ctypes.c_void_p()
    check(_lib.lib().chorus_comm_init_rank(ctypes.byref(h), int(nranks), cid, int(rank)),
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
    """
    if not os.environ.get("CHORUS_ROOT_ADDR"):
        if _torch_dist() is not None:
            return init_from_torch()
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            return _init_from_agent_store()
    h = ctypes.c_void_p()
    check(_lib.lib().chorus_comm_init_env(ctypes.byref(h)), "chorus_comm_init_env")
    return Communicator(h.value)


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
