#!/usr/bin/env bash
# tests/python_install_check.sh BUILD_DIR PYTHON - `make install` puts the Python
# package where the prefix's Python finds it.
#
# Installs the package of BUILD_DIR (its install targets only: relinking the
# libraries for installation is slow and checked elsewhere) into a scratch
# DESTDIR and checks that chorus/ landed in
# $(pythondir), that $(pythondir) is on PYTHON's sys.path (for a prefix the
# interpreter searches, such as Debian's /usr/local or /usr), that _config.py
# records $(libdir), and that the installed package imports and runs an
# allreduce (1 rank) with the build's library.
set -eu
BUILD=$1
PY=$2
dest=$(mktemp -d "${TMPDIR:-/tmp}/chorus-pyinstall.XXXXXX")
trap 'rm -rf "$dest"' EXIT
make -C "$BUILD" -s install-pkgpythonPYTHON install-nodist_pkgpythonPYTHON DESTDIR="$dest" >"$dest.log" 2>&1 || { cat "$dest.log"; rm -f "$dest.log"; exit 1; }
rm -f "$dest.log"
var() { printf 'print-var: ; @echo $(%s)\n' "$1" | make -s --no-print-directory -C "$BUILD" -f Makefile -f - print-var; }
pythondir=$(var pythondir)
libdir=$(var libdir)
prefix=$(var prefix)
echo "pythondir=$pythondir libdir=$libdir python=$PY"
pkg=$dest$pythondir/chorus
for f in __init__.py __pycache__ _lib.py _buffers.py errors.py comm.py init.py torch_hooks.py _config.py; do
    [ -e "$pkg/$f" ] || { echo "FAIL: $pkg/$f not installed"; exit 1; }
done
grep -qx "LIBDIR = \"$libdir\"" "$pkg/_config.py" || { echo "FAIL: _config.py does not record $libdir:"; cat "$pkg/_config.py"; exit 1; }
case $prefix in
/usr | /usr/local)
    "$PY" -c 'import sys; sys.exit(0 if sys.argv[1] in sys.path else 1)' "$pythondir" ||
        { echo "FAIL: $pythondir is not on $PY's sys.path:"; "$PY" -c 'import sys; print(sys.path)'; exit 1; }
    echo "$pythondir is on $PY's sys.path" ;;
*) echo "prefix $prefix: not a standard one, sys.path not checked (PYTHONPATH needed)" ;;
esac
# the installed package (byte-compiled at install) with the build's library
PYTHONPATH=$dest$pythondir CHORUS_LIBRARY=$BUILD/src/.libs/libchorus.so PYTHONDONTWRITEBYTECODE=1 \
    "$PY" -c '
import sys, chorus
assert chorus.__file__.startswith(sys.argv[1]), chorus.__file__
import numpy as np
c = chorus.init_rank(1, chorus.get_unique_id(), 0)
a = np.arange(5, dtype=np.float32)
c.allreduce(a)
assert a.tolist() == [0, 1, 2, 3, 4], a
c.destroy()
print("installed package imported from", chorus.__file__)' "$dest"
