"""Chorus errors as Python exceptions.

Every failing C call becomes a ChorusError carrying the result code (.code,
an int equal to the C enum), its short name (.name, as
chorus_get_error_string says it) and the detailed text of
chorus_get_last_error() (.detail). Arguments refused by the binding itself
(a dtype Chorus has no type for, a non-contiguous tensor, wrong sizes) raise
ChorusArgumentError, a ChorusError with code INVALID_ARGUMENT that is also a
ValueError, before anything reaches the library.
"""
from . import _lib

SUCCESS = 0
INVALID_ARGUMENT = 1
INVALID_USAGE = 2
SYSTEM_ERROR = 3
INTERNAL_ERROR = 4
REMOTE_ERROR = 5
TIMEOUT = 6
IN_PROGRESS = 7

_NAMES = {0: "success", 1: "invalid argument", 2: "invalid usage", 3: "system error",
          4: "internal error", 5: "remote error", 6: "timeout", 7: "in progress"}


class ChorusError(RuntimeError):
    """A Chorus call failed: .code (int), .name, .detail (the library's text)."""

    def __init__(self, code, detail, call=None):
        self.code = int(code)
        self.name = _NAMES.get(self.code, "unknown result %d" % self.code)
        self.detail = detail
        self.call = call
        where = "%s: " % call if call else ""
        super().__init__("%s%s (%s)" % (where, detail or self.name, self.name))


class ChorusArgumentError(ChorusError, ValueError):
    """An argument the binding refuses before calling the library."""

    def __init__(self, detail, call=None):
        super().__init__(INVALID_ARGUMENT, detail, call)


def check(res, call):
    """Raises ChorusError for a result other than CHORUS_SUCCESS."""
    if res == SUCCESS:
        return
    lib = _lib.lib()
    # The last error is per thread and the call just ran on this thread.
    text = lib.chorus_get_last_error()
    detail = text.decode("utf-8", "replace") if text else ""
    if not detail:
        name = lib.chorus_get_error_string(res)
        detail = name.decode() if name else ""
    raise ChorusError(res, detail, call)
