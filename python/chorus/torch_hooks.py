"""A DistributedDataParallel communication hook that averages gradient
buckets through Chorus instead of the process group's backend.

    import chorus, chorus.torch_hooks
    model = torch.nn.parallel.DistributedDataParallel(model)
    state = chorus.torch_hooks.ChorusHookState(chorus.init_from_torch())
    model.register_comm_hook(state, chorus.torch_hooks.allreduce_hook)

DDP calls the hook as each bucket of gradients becomes ready during the
backward pass. The hook starts a nonblocking average (chorus iallreduce, op
avg, in place on the bucket's flat buffer) and returns a torch Future at
once, so the allreduce of one bucket runs on Chorus' worker thread while
autograd computes the next. One waiter thread per state completes the
futures in order (Chorus completes a communicator's operations in the order
they started); DDP waits for them at the end of backward.

A failure never leaves a future pending (DDP would wait for it forever): an
error starting the allreduce, an error it ends with (ChorusError), any other
exception while waiting, and a hook called after close() all complete the
future with that exception, which DDP raises from backward().
"""
import queue
import threading

import torch

from .errors import ChorusError, INVALID_USAGE


class ChorusHookState:
    """The communicator the hook uses, and the thread that completes its futures."""

    def __init__(self, comm):
        self.comm = comm
        self._closed = False
        self._lock = threading.Lock()
        self._pending = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._complete, name="chorus-ddp-hook",
                                        daemon=True)
        self._thread.start()

    def _complete(self):
        while True:
            item = self._pending.get()
            if item is None:
                return
            req, fut, tensor = item
            try:
                req.wait()  # ctypes drops the GIL while Chorus waits
            except Exception as e:  # noqa: BLE001 - every failure goes to DDP, none kills the thread
                _fail(fut, e)
                continue
            try:
                fut.set_result(tensor)
            except Exception:  # noqa: BLE001 - already completed: nothing waits on it
                pass

    def submit(self, req, fut, tensor):
        """Queues req; its completion completes fut (with tensor, or the error)."""
        with self._lock:
            if not self._closed:
                self._pending.put((req, fut, tensor))
                return
        try:
            req.wait()
        except Exception as e:  # noqa: BLE001
            _fail(fut, e)
            return
        _fail(fut, _closed_error())

    def close(self):
        """Stops the waiter thread (after the futures already submitted).
        Hooks called afterwards return failed futures."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._pending.put(None)
        self._thread.join()


def _closed_error():
    return ChorusError(INVALID_USAGE, "the ChorusHookState was closed", "allreduce_hook")


def _fail(fut, exc):
    try:
        fut.set_exception(exc)
    except Exception:  # noqa: BLE001 - already completed
        pass


def allreduce_hook(state, bucket):
    """Averages the bucket over state.comm's ranks; returns a Future of the buffer."""
    fut = torch.futures.Future()
    if state._closed:
        fut.set_exception(_closed_error())
        return fut
    try:
        tensor = bucket.buffer()
        req = state.comm.iallreduce(tensor, op="avg")
    except Exception as e:  # noqa: BLE001 - ChorusError, or anything else: DDP raises it
        fut.set_exception(e)
        return fut
    state.submit(req, fut, tensor)
    return fut


# the name the docs and examples use
chorus_hook = allreduce_hook
