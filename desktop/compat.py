"""A guard against PySide6 6.12.0's lost references to None, True and False on Python < 3.12.

PySide6 6.12.0 treats None, True and False as immortal, which they are only from Python 3.12
(PEP 683). On Python 3.11 every ``signal.emit()`` drops a reference to True, and every slot or
virtual method returning None, and every ``QModelIndex.data()`` that has no value, drops one to
None. After a few thousand of them the interpreter aborts with "Fatal Python error:
bool_dealloc" or "none_dealloc". PySide6 6.11 does not do this.

``protect_singletons`` checks whether the installed PySide6 has the problem and, only then,
gives the three objects a reference count so large it can never reach zero: what Python 3.12
does for them. Once PySide6 is fixed (or Python is 3.12+) the check finds nothing and this
does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import sys

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)

REFCOUNT_BOOST = 1 << 40  # more references than a program could drop in centuries
_protected = False


class _Probe(QObject):
    pinged = Signal()


def pyside_drops_singleton_references() -> bool:
    """True when emitting a signal loses a reference to True (PySide6 6.12.0, Python < 3.12)."""
    if sys.version_info >= (3, 12):
        return False  # None, True and False are immortal there
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(20):
        probe.pinged.emit()
    return sys.getrefcount(True) <= before - 20


def protect_singletons() -> bool:
    """Apply the guard when this PySide6 needs it; True when it was applied (now or before)."""
    global _protected
    if _protected:
        return True
    if not pyside_drops_singleton_references():
        return False
    if hasattr(sys, "gettotalrefcount"):  # a debug build lays objects out differently
        log.error(
            "PySide6 %s loses references to None/True/False; cannot guard a debug build",
            pyside_version,
        )
        return False
    for singleton in (None, True, False):
        # ob_refcnt is the first field of every object in a release build of CPython.
        ctypes.c_ssize_t.from_address(id(singleton)).value += REFCOUNT_BOOST
    _protected = True
    log.warning(
        "PySide6 %s loses references to None/True/False on Python %d.%d; guarding against it "
        "(PySide6 6.11 or Python 3.12+ do not need this)",
        pyside_version,
        *sys.version_info[:2],
    )
    return True
