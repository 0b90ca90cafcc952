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
"""
import queue
import threading

import torch

from .errors import ChorusError


class ChorusHookState:
    """The communicator the hook uses, and the thread that completes its futures."""

    def __init__(self, comm):
        self.comm = comm
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
            except ChorusError as e:
                fut.set_exception(e)
                continue
            fut.set_result(tensor)

    def submit(self, req, fut, tensor):
        self._pending.put((req, fut, tensor))

    def close(self):
        """Stops the waiter thread (after the futures already submitted)."""
        self._pending.put(None)
        self._thread.join()


def allreduce_hook(state, bucket):
    """Averages the bucket over state.comm's ranks; returns a Future of the buffer."""
    tensor = bucket.buffer()
    fut = torch.futures.Future()
    try:
        req = state.comm.iallreduce(tensor, op="avg")
    except ChorusError as e:
        fut.set_exception(e)
        return fut
    state.submit(req, fut, tensor)
    return fut


# the name the docs and examples use
chorus_hook = allreduce_hook
