"""chorus - Python binding of the Chorus collective-communication library.

    import chorus
    comm = chorus.init_from_env()         # torchrun's MASTER_ADDR/PORT, RANK, WORLD_SIZE
    comm.allreduce(tensor, op="sum")      # in place, like torch.distributed.all_reduce
    req = comm.iallreduce(grads, op="avg"); ...; req.wait()

numpy arrays and torch CPU tensors are passed by their data pointers, never
copied (they must be contiguous). ctypes over libchorus: no compiled
extension. See docs/python.md.
"""
from ._buffers import TYPE_NAMES as types
from .comm import Communicator, Request
from .errors import (ChorusArgumentError, ChorusError, INTERNAL_ERROR, INVALID_ARGUMENT,
                     INVALID_USAGE, REMOTE_ERROR, SYSTEM_ERROR, TIMEOUT)
from .init import get_unique_id, init_from_env, init_from_torch, init_rank

SUM, PROD, MIN, MAX, AVG = "sum", "prod", "min", "max", "avg"

__all__ = ["Communicator", "Request", "ChorusError", "ChorusArgumentError", "get_unique_id",
           "init_rank", "init_from_env", "init_from_torch", "types", "SUM", "PROD", "MIN", "MAX",
           "AVG", "INVALID_ARGUMENT", "INVALID_USAGE", "SYSTEM_ERROR", "INTERNAL_ERROR",
           "REMOTE_ERROR", "TIMEOUT"]
