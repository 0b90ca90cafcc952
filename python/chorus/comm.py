"""The communicator and its collectives, blocking and nonblocking.

Every collective takes numpy arrays or torch CPU tensors and hands Chorus
their own memory (no copies). Names and argument order follow
torch.distributed where it has the collective (output first, then input;
"in place" when the input is left out), the semantics those of chorus.h.
A nonblocking call (the "i" forms) returns a Request that keeps every
buffer alive until it completes.
"""
import ctypes
import threading
import weakref

from . import _lib
from ._buffers import as_buffer, as_int, op_code, same_type
from .errors import ChorusArgumentError, ChorusError, INVALID_USAGE, IN_PROGRESS, SUCCESS, check


class _State:
    """What the communicator's finalizer needs: the handle and live requests."""

    def __init__(self, handle):
        self.handle = handle
        self.requests = weakref.WeakSet()
        self.lock = threading.Lock()


def _close(state, abort=False):
    with state.lock:
        handle, state.handle = state.handle, None
    if handle is None:
        return SUCCESS
    lib = _lib.lib()
    if abort:
        lib.chorus_comm_abort(handle)
    # Requests must not outlive the communicator their handles belong to.
    for req in list(state.requests):
        req._finish(quiet=True)
    res = SUCCESS if abort else lib.chorus_comm_finalize(handle)
    res2 = lib.chorus_comm_destroy(handle)
    return res if res != SUCCESS else res2


class Request:
    """A nonblocking operation in flight. wait() returns its output."""

    def __init__(self, comm, handle, keep, result, call):
        self._comm = comm  # the communicator outlives its requests
        self._handle = handle
        self._keep = keep  # arrays and count vectors the library still uses
        self._result = result
        self._call = call
        self._lock = threading.Lock()
        self._error = None

    def _finish(self, quiet=False):
        with self._lock:
            if self._handle is not None and self._handle.value:
                res = _lib.lib().chorus_wait(ctypes.byref(self._handle))
                self._handle = None
                self._keep = None
                if res != SUCCESS:
                    try:
                        check(res, self._call)
                    except ChorusError as e:
                        self._error = e
        if self._error is not None and not quiet:
            raise self._error

    def wait(self):
        """Blocks until done (bounded by CHORUS_TIMEOUT_MS); returns the output
        array, or raises ChorusError if the operation failed."""
        self._finish()
        return self._result

    def test(self):
        """True once done (then wait() returns at once), False while running;
        raises ChorusError if the operation failed."""
        with self._lock:
            if self._handle is not None and self._handle.value:
                res = _lib.lib().chorus_test(ctypes.byref(self._handle))
                if res == IN_PROGRESS:
                    return False
                self._handle = None
                self._keep = None
                if res != SUCCESS:
                    try:
                        check(res, self._call)
                    except ChorusError as e:
                        self._error = e
        if self._error is not None:
            raise self._error
        return True

    def is_completed(self):
        return self._handle is None

    def result(self):
        return self._result

    def __del__(self):
        # Dropped while running: wait, or the library would write into freed memory.
        try:
            self._finish(quiet=True)
        except Exception:
            pass


class _Call:
    """One prepared call: the C arguments before the communicator, what must
    stay alive while it runs, and what the Python call returns."""

    __slots__ = ("name", "args", "keep", "result")

    def __init__(self, name, args, keep, result):
        self.name, self.args, self.keep, self.result = name, args, keep, result


def _sizes(values, n, what, call):
    try:
        values = list(values)
    except TypeError:  # not iterable
        raise ChorusArgumentError("%s must be a sequence of %d integers, not %s"
                                  % (what, n, type(values).__name__), call) from None
    vals = [as_int(v, "%s[%d]" % (what, k), call, lo=-2 ** 63, hi=2 ** 63 - 1)
            for k, v in enumerate(values)]
    if len(vals) != n or any(v < 0 for v in vals):
        raise ChorusArgumentError("%s needs %d non-negative values, got %r" % (what, n, values), call)
    return (ctypes.c_size_t * n)(*vals), vals


def _prefix(counts):
    out, acc = [], 0
    for c in counts:
        out.append(acc)
        acc += c
    return out


class Communicator:
    """A Chorus communicator. Create it with chorus.init_from_env(),
    chorus.init_rank() or chorus.init_from_torch(); destroy() (or a with
    block) releases it, otherwise it is released when garbage-collected or at
    exit."""

    def __init__(self, handle):
        self._state = _State(handle)
        self._finalizer = weakref.finalize(self, _close, self._state)
        lib = _lib.lib()
        v = ctypes.c_int()
        check(lib.chorus_comm_rank(handle, ctypes.byref(v)), "chorus_comm_rank")
        self.rank = v.value
        check(lib.chorus_comm_count(handle, ctypes.byref(v)), "chorus_comm_count")
        self.size = v.value
        # where this rank runs, as Chorus grouped the ranks by host id
        # (chorus_comm_host): host index (hosts in order of their lowest
        # rank), host count, index among the host's ranks and their count
        w = [ctypes.c_int() for _ in range(4)]
        check(lib.chorus_comm_host(handle, *[ctypes.byref(x) for x in w]), "chorus_comm_host")
        self.host, self.nhosts, self.local_rank, self.local_size = (x.value for x in w)

    def __repr__(self):
        return "<chorus.Communicator rank %d of %d%s>" % (
            self.rank, self.size, "" if self._state.handle else ", destroyed")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()

    # ---- life cycle ----------------------------------------------------------
    def _handle(self, call):
        h = self._state.handle
        if h is None:
            raise ChorusError(INVALID_USAGE, "the communicator was destroyed", call)
        return h

    def destroy(self):
        """Waits for outstanding operations and frees the communicator."""
        self._finalizer.detach()
        check(_close(self._state), "chorus_comm_destroy")

    def abort(self):
        """Makes in-flight operations return an error, then frees the communicator."""
        self._finalizer.detach()
        _close(self._state, abort=True)

    def split(self, color, key=None):
        """Collective: ranks with the same color form a new communicator
        (ordered by key, then rank); color < 0 joins none (returns None)."""
        call = "chorus_comm_split"
        color = as_int(color, "color", call)
        key = self.rank if key is None else as_int(key, "key", call)
        h = self._handle(call)
        out = ctypes.c_void_p()
        check(_lib.lib().chorus_comm_split(h, color, key, ctypes.byref(out)), call)
        return Communicator(out.value) if out.value else None

    # ---- running a prepared call ---------------------------------------------
    def _run(self, c):
        h = self._handle("chorus_" + c.name)
        fn = getattr(_lib.lib(), "chorus_" + c.name)
        check(fn(*c.args, h), "chorus_" + c.name)
        return c.result

    def _start(self, c):
        h = self._handle("chorus_i" + c.name)
        req = ctypes.c_void_p()
        fn = getattr(_lib.lib(), "chorus_i" + c.name)
        check(fn(*c.args, h, ctypes.byref(req)), "chorus_i" + c.name)
        r = Request(self, req, c.keep, c.result, "chorus_i" + c.name)
        self._state.requests.add(r)
        return r

    # ---- preparing each collective -------------------------------------------
    def _p_allreduce(self, tensor, op, out):
        call = "allreduce"
        s = as_buffer(tensor, "tensor", call, output=out is None)
        r = s if out is None else as_buffer(out, "out", call, output=True)
        same_type(s, r, call)
        if r.count != s.count:
            raise ChorusArgumentError("out has %d elements, tensor %d" % (r.count, s.count), call)
        return _Call(call, [s.ptr, r.ptr, s.count, s.type, op_code(op, call)], (s, r), r.obj)

    def _p_allgather(self, output, input):
        call = "allgather"
        o = as_buffer(output, "output", call, output=True)
        n = self.size
        if input is None:  # in place: this rank's slice of output is the input
            if o.count % n:
                raise ChorusArgumentError("output has %d elements, not a multiple of %d ranks"
                                          % (o.count, n), call)
            cnt = o.count // n
            return _Call(call, [o.ptr + self.rank * cnt * o.itemsize, o.ptr, cnt, o.type], (o,),
                         o.obj)
        i = as_buffer(input, "input", call)
        same_type(i, o, call)
        if o.count != n * i.count:
            raise ChorusArgumentError("output has %d elements, needs %d ranks x %d"
                                      % (o.count, n, i.count), call)
        return _Call(call, [i.ptr, o.ptr, i.count, i.type], (i, o), o.obj)

    def _p_alltoall(self, output, input):
        call = "alltoall"
        o = as_buffer(output, "output", call, output=True)
        i = o if input is None else as_buffer(input, "input", call)
        same_type(i, o, call)
        n = self.size
        if i.count != o.count or o.count % n:
            raise ChorusArgumentError("input (%d) and output (%d) need the same number of "
                                      "elements, a multiple of %d ranks" % (i.count, o.count, n),
                                      call)
        return _Call(call, [i.ptr, o.ptr, o.count // n, o.type], (i, o), o.obj)

    def _p_alltoallv(self, output, input, output_split_sizes, input_split_sizes,
                     output_offsets, input_offsets):
        call = "alltoallv"
        n = self.size
        o = as_buffer(output, "output", call, output=True)
        i = o if input is None else as_buffer(input, "input", call)
        same_type(i, o, call)
        if input_split_sizes is None:
            input_split_sizes = output_split_sizes
        rc, rv = _sizes(output_split_sizes, n, "output_split_sizes", call)
        sc, sv = _sizes(input_split_sizes, n, "input_split_sizes", call)
        rd, rdv = _sizes(_prefix(rv) if output_offsets is None else output_offsets, n,
                         "output_offsets", call)
        sd, sdv = _sizes(_prefix(sv) if input_offsets is None else input_offsets, n,
                         "input_offsets", call)
        for what, buf, counts, displs in (("input", i, sv, sdv), ("output", o, rv, rdv)):
            end = max([c + d for c, d in zip(counts, displs)] + [0])
            if end > buf.count:
                raise ChorusArgumentError("%s has %d elements but its splits reach %d"
                                          % (what, buf.count, end), call)
        return _Call(call, [i.ptr, sc, sd, o.ptr, rc, rd, o.type], (i, o, sc, sd, rc, rd), o.obj)

    def _p_reduce_scatter(self, output, input, op):
        call = "reduce_scatter"
        i = as_buffer(input, "input", call, output=output is None)
        n = self.size
        if output is None:  # in place: the output is this rank's slice of input
            if i.count % n:
                raise ChorusArgumentError("input has %d elements, not a multiple of %d ranks"
                                          % (i.count, n), call)
            cnt = i.count // n
            view = i.view(self.rank * cnt, cnt)
            return _Call(call, [i.ptr, i.ptr + self.rank * cnt * i.itemsize, cnt, i.type,
                                op_code(op, call)], (i,), view)
        o = as_buffer(output, "output", call, output=True)
        same_type(i, o, call)
        if i.count != n * o.count:
            raise ChorusArgumentError("input has %d elements, needs %d ranks x %d"
                                      % (i.count, n, o.count), call)
        return _Call(call, [i.ptr, o.ptr, o.count, o.type, op_code(op, call)], (i, o), o.obj)

    def _p_broadcast(self, tensor, root, out):
        call = "broadcast"
        root = as_int(root, "root", call)
        s = as_buffer(tensor, "tensor", call, output=out is None)
        r = s if out is None else as_buffer(out, "out", call, output=True)
        same_type(s, r, call)
        if r.count != s.count:
            raise ChorusArgumentError("out has %d elements, tensor %d" % (r.count, s.count), call)
        return _Call(call, [s.ptr, r.ptr, s.count, s.type, root], (s, r), r.obj)

    def _p_reduce(self, tensor, root, op, out):
        call = "reduce"
        root = as_int(root, "root", call)
        s = as_buffer(tensor, "tensor", call, output=out is None and self.rank == root)
        if out is None:
            r = s if self.rank == root else None
        else:
            r = as_buffer(out, "out", call, output=True)
            same_type(s, r, call)
            if r.count != s.count:
                raise ChorusArgumentError("out has %d elements, tensor %d" % (r.count, s.count),
                                          call)
        rptr = r.ptr if r is not None else (s.ptr if out is None else None)
        result = (out if out is not None else tensor) if self.rank == root else None
        return _Call(call, [s.ptr, rptr, s.count, s.type, op_code(op, call), root], (s, r),
                     result)

    # ---- blocking collectives ------------------------------------------------
    def allreduce(self, tensor, op="sum", out=None):
        """Reduces tensor over all ranks; in place unless out is given. Returns the result."""
        return self._run(self._p_allreduce(tensor, op, out))

    def allgather(self, output, input=None):
        """output (size x input elements) receives every rank's input in rank
        order; input None: in place, this rank's slice of output is the input."""
        return self._run(self._p_allgather(output, input))

    def alltoall(self, output, input=None):
        """Equal splits: slice p of input goes to rank p, slice p of output
        comes from rank p; input None: in place."""
        return self._run(self._p_alltoall(output, input))

    def alltoallv(self, output, input, output_split_sizes, input_split_sizes=None,
                  output_offsets=None, input_offsets=None):
        """Per-peer counts (elements); offsets default to the running sums of
        the counts; input None: in place (equal splits and offsets)."""
        return self._run(self._p_alltoallv(output, input, output_split_sizes, input_split_sizes,
                                           output_offsets, input_offsets))

    def reduce_scatter(self, output, input, op="sum"):
        """Reduces input (size x output elements) over all ranks; this rank
        gets block rank. output None: in place, returns this rank's slice of input."""
        return self._run(self._p_reduce_scatter(output, input, op))

    def broadcast(self, tensor, root=0, out=None):
        """root's tensor to every rank; in place unless out is given."""
        return self._run(self._p_broadcast(tensor, root, out))

    def reduce(self, tensor, root=0, op="sum", out=None):
        """Reduction onto root: into tensor (in place) or out; returns the
        result on root, None elsewhere (out may be None off root)."""
        return self._run(self._p_reduce(tensor, root, op, out))

    def barrier(self):
        h = self._handle("chorus_barrier")
        check(_lib.lib().chorus_barrier(h), "chorus_barrier")

    def send(self, tensor, peer):
        peer = as_int(peer, "peer", "send")
        s = as_buffer(tensor, "tensor", "send")
        self._run(_Call("send", [s.ptr, s.count, s.type, peer], (s,), None))

    def recv(self, tensor, peer):
        peer = as_int(peer, "peer", "recv")
        r = as_buffer(tensor, "tensor", "recv", output=True)
        return self._run(_Call("recv", [r.ptr, r.count, r.type, peer], (r,), tensor))

    def sendrecv(self, send_tensor, dest, recv_tensor, source):
        """Sends to dest and receives from source at once (no deadlock between pairs)."""
        dest = as_int(dest, "dest", "sendrecv")
        source = as_int(source, "source", "sendrecv")
        s = as_buffer(send_tensor, "send_tensor", "sendrecv")
        r = as_buffer(recv_tensor, "recv_tensor", "sendrecv", output=True)
        same_type(s, r, "sendrecv")
        return self._run(_Call("sendrecv", [s.ptr, s.count, dest, r.ptr, r.count, source, s.type],
                               (s, r), recv_tensor))

    # ---- nonblocking: same arguments, return a Request -------------------------
    def iallreduce(self, tensor, op="sum", out=None):
        return self._start(self._p_allreduce(tensor, op, out))

    def iallgather(self, output, input=None):
        return self._start(self._p_allgather(output, input))

    def ialltoall(self, output, input=None):
        return self._start(self._p_alltoall(output, input))

    def ialltoallv(self, output, input, output_split_sizes, input_split_sizes=None,
                   output_offsets=None, input_offsets=None):
        return self._start(self._p_alltoallv(output, input, output_split_sizes,
                                             input_split_sizes, output_offsets, input_offsets))

    def ireduce_scatter(self, output, input, op="sum"):
        return self._start(self._p_reduce_scatter(output, input, op))

    def ibroadcast(self, tensor, root=0, out=None):
        return self._start(self._p_broadcast(tensor, root, out))

    def ireduce(self, tensor, root=0, op="sum", out=None):
        return self._start(self._p_reduce(tensor, root, op, out))

    def ibarrier(self):
        return self._start(_Call("barrier", [], (), None))

    # torch.distributed spellings of the same calls (same argument order)
    all_reduce = allreduce
    all_gather_into_tensor = allgather
    reduce_scatter_tensor = reduce_scatter

    def all_to_all_single(self, output, input, output_split_sizes=None, input_split_sizes=None):
        if output_split_sizes is None and input_split_sizes is None:
            return self.alltoall(output, input)
        n = self.size
        if output_split_sizes is None:
            output_split_sizes = [as_buffer(output, "output", "alltoallv").count // n] * n
        if input_split_sizes is None:
            input_split_sizes = [as_buffer(input, "input", "alltoallv").count // n] * n
        return self.alltoallv(output, input, output_split_sizes, input_split_sizes)
