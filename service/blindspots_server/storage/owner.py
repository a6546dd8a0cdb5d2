"""One process at a time owns an embedded data directory.

A second server started on the same directory (a copy-pasted unit file, a pipeline that starts
its own server beside the shared one) would tidy it as a restart does: move the first one's
files still on their way into the catalog to quarantine/, and mark its running jobs failed; and
two processes each holding their own locks for suggestion rounds would hand out the same pool
rows twice. So opening the store takes an exclusive lock on ``<data_dir>/owner.lock`` and keeps it
until the store is closed; an open in another process is refused (StoreUnusable) and names the
owner (store objects within one process share its lock). The lock is the kernel's (flock), so a
process that dies, even by SIGKILL, leaves none behind: there is no stale lock to clear. Reads
that do not open the store (``store check``, ``store backup``/``copy`` from the directory) take
no lock: they work beside a running server.

Where the file system has no flock (some network mounts answer ENOLCK), the store opens without
the lock and logs a warning.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Optional

from .base import StoreUnusable

try:
    import fcntl
except ImportError:             # not on POSIX: no lock
    fcntl = None

LOCK_FILE = "owner.lock"
log = logging.getLogger("blindspots.store")


# The process's locks: a path (resolved) -> [the locked file's descriptor or None, how many holders].
# Store objects of one process share its lock (tests open a directory again, as a restart would).
_held: dict[str, list] = {}
_held_lock = threading.Lock()


class DirectoryOwner:
    """This process's exclusive lock on a data directory, held from construction to :meth:`release`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._key: Optional[str] = os.path.realpath(self.root)
        with _held_lock:
            if self._key in _held:
                _held[self._key][1] += 1
            else:
                _held[self._key] = [_lock(self.root), 1]

    def release(self) -> None:
        """Give the directory up (the last holder in the process closes the file, which drops the
        lock); idempotent."""
        with _held_lock:
            if self._key is None:
                return
            entry = _held[self._key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[self._key]
                if entry[0] is not None:
                    os.close(entry[0])
            self._key = None


def _lock(root: Path) -> Optional[int]:
    """The descriptor of ``root``'s lock file, locked; None where it cannot be locked."""
    if fcntl is None:
        return None
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "a process that wrote no name"
        os.close(fd)
        raise StoreUnusable(f"the data directory {root} is in use by another process ({holder}): one "
                            "server, or `blindspots store recover`, owns it at a time (several servers need "
                            "the PostgreSQL store); nothing was changed") from None
    except OSError as exc:
        os.close(fd)
        log.warning("cannot lock %s (%s): opening it without the lock; make sure no other process has "
                    "this data directory open", root / LOCK_FILE, exc)
        return None
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {since}\n".encode(), 0)
    return fd
