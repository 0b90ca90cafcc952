"""Turning numpy arrays and torch CPU tensors into (address, count, type).

No data is copied: Chorus reads and writes the array's own memory, so the
array must be one contiguous block (C order) in host memory, and an output
must be writable: checked for numpy arrays (flags.writeable); a torch tensor
has no such flag, so a tensor made by torch.from_numpy() over a read-only
array cannot be told apart (docs/python.md). numpy and torch are never
imported here: an object is recognised only if its module is already loaded
(whoever made the array imported it).
"""
import operator
import sys

from .errors import ChorusArgumentError

# chorus_datatype_t values (include/chorus.h)
INT8, UINT8, INT32, UINT32, INT64, UINT64, FLOAT16, BFLOAT16, FLOAT32, FLOAT64 = range(10)
TYPE_NAMES = ["int8", "uint8", "int32", "uint32", "int64", "uint64", "float16", "bfloat16",
              "float32", "float64"]
_BY_NAME = {name: code for code, name in enumerate(TYPE_NAMES)}

# chorus_op_t values, by name. torch.distributed.ReduceOp members map by their
# name, never by their number (torch numbers them differently: its AVG is 1,
# Chorus' 1 is PROD).
OPS = {"sum": 0, "prod": 1, "product": 1, "min": 2, "max": 3, "avg": 4, "mean": 4}


def _op_name(op):
    """The name of a torch.distributed.ReduceOp member, or None.

    torch < 1.13: ReduceOp.SUM is a pybind11 enum value with .name.
    torch 1.13: ReduceOp.SUM is a ReduceOp instance holding the enum value in
    .op (RedOpType.SUM, with .name); the instance itself has no .name.
    torch >= 2.0: ReduceOp.SUM is the RedOpType value itself (.name).
    """
    for _ in range(3):  # ReduceOp -> RedOpType -> (nothing further)
        name = getattr(op, "name", None)
        if isinstance(name, str):
            return name
        inner = getattr(op, "op", None)
        if inner is None or inner is op:
            return None
        op = inner
    return None


def op_code(op, call):
    name = op if isinstance(op, str) else _op_name(op)
    code = OPS.get(name.lower()) if name is not None else None
    if code is None:
        what = repr(op) if name is None or isinstance(op, str) else "%r (%s)" % (op, name)
        raise ChorusArgumentError("unknown reduction op %s (use one of sum, prod, min, max, avg, "
                                  "or torch.distributed.ReduceOp.SUM/PRODUCT/MIN/MAX/AVG)" % what,
                                  call)
    return code


INT_MIN, INT_MAX = -2 ** 31, 2 ** 31 - 1


def as_int(value, what, call, lo=INT_MIN, hi=INT_MAX):
    """value as a Python int if it is an integer (int, numpy or torch integer
    scalar) within [lo, hi] (default: a C int); ChorusArgumentError otherwise
    (0.7 must not silently become rank 0, nor 2**32 wrap around)."""
    if isinstance(value, bool):
        raise ChorusArgumentError("%s must be an integer, not a bool (%r)" % (what, value), call)
    try:
        v = operator.index(value)
    except TypeError:
        raise ChorusArgumentError("%s must be an integer, not %s %r"
                                  % (what, type(value).__name__, value), call) from None
    if not lo <= v <= hi:
        raise ChorusArgumentError("%s %d is out of range (%d..%d)" % (what, v, lo, hi), call)
    return v


class Buffer:
    """One array as Chorus sees it; .obj keeps the array alive."""

    __slots__ = ("obj", "ptr", "count", "type", "itemsize", "writable", "kind")

    def __init__(self, obj, ptr, count, ctype, itemsize, writable, kind):
        self.obj, self.ptr, self.count, self.type = obj, ptr, count, ctype
        self.itemsize, self.writable, self.kind = itemsize, writable, kind

    def view(self, start, count):
        """Elements [start, start + count) of the same memory, as an array of the same kind."""
        flat = self.obj.reshape(-1)
        return flat[start:start + count]


def _numpy_buffer(a, what, call):
    dt = a.dtype
    name = dt.name if dt.isnative or dt.itemsize == 1 else None
    code = _BY_NAME.get(name) if dt.kind in "iuf" else None
    if code is None:
        raise ChorusArgumentError("%s: numpy dtype %s has no Chorus type (supported: %s)"
                                  % (what, dt, ", ".join(n for n in TYPE_NAMES if n != "bfloat16")),
                                  call)
    if not a.flags.c_contiguous:
        raise ChorusArgumentError("%s is not contiguous (strides %s): pass "
                                  "numpy.ascontiguousarray(a), Chorus does not copy" % (what, a.strides),
                                  call)
    return Buffer(a, a.ctypes.data, int(a.size), code, dt.itemsize, bool(a.flags.writeable), "numpy")


_TORCH_TYPES = None


def _torch_types(torch):
    global _TORCH_TYPES
    if _TORCH_TYPES is None:
        table = {torch.int8: INT8, torch.uint8: UINT8, torch.int32: INT32, torch.int64: INT64,
                 torch.float16: FLOAT16, torch.bfloat16: BFLOAT16, torch.float32: FLOAT32,
                 torch.float64: FLOAT64}
        # unsigned 32/64-bit tensors exist only in newer torch
        for attr, code in (("uint32", UINT32), ("uint64", UINT64)):
            if hasattr(torch, attr):
                table[getattr(torch, attr)] = code
        _TORCH_TYPES = table
    return _TORCH_TYPES


def _torch_buffer(t, torch, what, call):
    code = _torch_types(torch).get(t.dtype)
    if code is None:
        raise ChorusArgumentError("%s: torch dtype %s has no Chorus type" % (what, t.dtype), call)
    if t.device.type != "cpu":
        raise ChorusArgumentError("%s is on device %s: Chorus works on CPU tensors" % (what, t.device),
                                  call)
    if t.layout != torch.strided:
        raise ChorusArgumentError("%s has layout %s: only dense (strided) tensors" % (what, t.layout),
                                  call)
    if not t.is_contiguous():
        raise ChorusArgumentError("%s is not contiguous (strides %s): pass t.contiguous(), "
                                  "Chorus does not copy" % (what, tuple(t.stride())), call)
    return Buffer(t, t.data_ptr(), t.numel(), code, t.element_size(), True, "torch")


def as_buffer(obj, what, call, output=False):
    """The Buffer of a numpy array or torch tensor; ChorusArgumentError otherwise."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        b = _torch_buffer(obj, torch, what, call)
    else:
        np = sys.modules.get("numpy")
        if np is not None and isinstance(obj, np.ndarray):
            b = _numpy_buffer(obj, what, call)
        else:
            raise ChorusArgumentError("%s must be a numpy array or a torch CPU tensor, not %s"
                                      % (what, type(obj).__name__), call)
    if output and not b.writable:
        raise ChorusArgumentError("%s is read-only but receives data" % what, call)
    return b


def same_type(a, b, call):
    if a.type != b.type:
        raise ChorusArgumentError("input is %s but output is %s: Chorus needs one type"
                                  % (TYPE_NAMES[a.type], TYPE_NAMES[b.type]), call)
