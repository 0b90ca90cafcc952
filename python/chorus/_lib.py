"""Loading libchorus and declaring the C prototypes (ctypes, no extension).

The library is looked for, in order: the file named by CHORUS_LIBRARY; the
libdir recorded when this package was built (_config.py, written by make);
whatever ctypes.util.find_library('chorus') and the dynamic loader find.
"""
import ctypes
import ctypes.util
import os

from ctypes import POINTER, c_char_p, c_int, c_size_t, c_void_p

UNIQUE_ID_BYTES = 128


class UniqueId(ctypes.Structure):
    _fields_ = [("internal", ctypes.c_char * UNIQUE_ID_BYTES)]


def _candidates():
    env = os.environ.get("CHORUS_LIBRARY")
    if env:
        # An explicit choice: no silent fallback to another copy.
        return [env], True
    names = []
    try:
        from . import _config
        for base in ("libchorus.so.0", "libchorus.so"):
            path = os.path.join(_config.LIBDIR, base)
            if os.path.exists(path):
                names.append(path)
    except ImportError:  # running from the source tree: no _config.py
        pass
    found = ctypes.util.find_library("chorus")
    if found:
        names.append(found)
    names += ["libchorus.so.0", "libchorus.so"]
    return names, False


def _load():
    names, explicit = _candidates()
    errors = []
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            errors.append("%s: %s" % (name, e))
            if explicit:
                break
    raise OSError("chorus: cannot load libchorus (set CHORUS_LIBRARY to its path); tried:\n  " +
                  "\n  ".join(errors))


_lib = None

comm_t = c_void_p
req_t = c_void_p
_R = c_int  # chorus_result_t


def _declare(lib):
    # (name, restype, argtypes); every pointer to data is a plain void *
    # (an integer address), so numpy and torch buffers pass without copies.
    v, z, i = c_void_p, c_size_t, c_int
    zp = POINTER(c_size_t)
    rq = POINTER(req_t)
    protos = [
        ("chorus_get_error_string", c_char_p, [i]),
        ("chorus_get_last_error", c_char_p, []),
        ("chorus_get_unique_id", _R, [POINTER(UniqueId)]),
        ("chorus_comm_init_rank", _R, [POINTER(comm_t), i, UniqueId, i]),
        ("chorus_comm_init_env", _R, [POINTER(comm_t)]),
        ("chorus_comm_split", _R, [comm_t, i, i, POINTER(comm_t)]),
        ("chorus_comm_finalize", _R, [comm_t]),
        ("chorus_comm_destroy", _R, [comm_t]),
        ("chorus_comm_abort", _R, [comm_t]),
        ("chorus_comm_count", _R, [comm_t, POINTER(c_int)]),
        ("chorus_comm_rank", _R, [comm_t, POINTER(c_int)]),
        ("chorus_comm_host", _R, [comm_t, POINTER(c_int), POINTER(c_int), POINTER(c_int),
                                  POINTER(c_int)]),
        ("chorus_allreduce", _R, [v, v, z, i, i, comm_t]),
        ("chorus_allgather", _R, [v, v, z, i, comm_t]),
        ("chorus_alltoall", _R, [v, v, z, i, comm_t]),
        ("chorus_alltoallv", _R, [v, zp, zp, v, zp, zp, i, comm_t]),
        ("chorus_reduce_scatter", _R, [v, v, z, i, i, comm_t]),
        ("chorus_broadcast", _R, [v, v, z, i, i, comm_t]),
        ("chorus_reduce", _R, [v, v, z, i, i, i, comm_t]),
        ("chorus_barrier", _R, [comm_t]),
        ("chorus_send", _R, [v, z, i, i, comm_t]),
        ("chorus_recv", _R, [v, z, i, i, comm_t]),
        ("chorus_sendrecv", _R, [v, z, i, v, z, i, i, comm_t]),
        ("chorus_iallreduce", _R, [v, v, z, i, i, comm_t, rq]),
        ("chorus_iallgather", _R, [v, v, z, i, comm_t, rq]),
        ("chorus_ialltoall", _R, [v, v, z, i, comm_t, rq]),
        ("chorus_ialltoallv", _R, [v, zp, zp, v, zp, zp, i, comm_t, rq]),
        ("chorus_ireduce_scatter", _R, [v, v, z, i, i, comm_t, rq]),
        ("chorus_ibroadcast", _R, [v, v, z, i, i, comm_t, rq]),
        ("chorus_ireduce", _R, [v, v, z, i, i, i, comm_t, rq]),
        ("chorus_ibarrier", _R, [comm_t, rq]),
        ("chorus_test", _R, [rq]),
        ("chorus_wait", _R, [rq]),
        ("chorus_type_size", z, [i]),
    ]
    for name, res, args in protos:
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args


def lib():
    """The loaded libchorus (loaded and declared on first use)."""
    global _lib
    if _lib is None:
        loaded = _load()
        _declare(loaded)
        _lib = loaded
    return _lib
