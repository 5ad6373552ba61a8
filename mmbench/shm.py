"""The arena: one shared-memory segment per run holding named, cache-line-aligned arrays.

A :class:`Layout` lists the arrays; :meth:`Arena.create` builds the segment (named
``mmbench-<pid>-<random>``) and :meth:`Arena.attach` maps an existing one by
name from another process.  Every array starts on a 4 KiB boundary when it is at
least a page long, else on a 64-byte boundary, so no two arrays share a line.

Lifetime: the creator unlinks the name on every exit path.  Besides ``close()``
(also via ``with``), the creator registers an ``atexit`` hook and a signal
handler for SIGTERM/SIGHUP (SIGINT raises KeyboardInterrupt, which unwinds
through ``with``).  The harness also unlinks the name as soon as every worker
has mapped the segment (:meth:`Arena.unlink`): from then on the memory lives
exactly as long as the mappings, and nothing, not even ``kill -9`` of the
parent, can leave a segment behind.
"""
from __future__ import annotations

import atexit
import os
import secrets
import signal
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

PREFIX = "mmbench-"
LINE = 64
PAGE = 4096

# Strong references: an arena whose creator lost it to an exception must still be
# found by the atexit hook (a WeakSet let it be collected with its name still linked).
_live: "set[Arena]" = set()
_handlers_installed = False


@dataclass(frozen=True)
class Field:
    name: str
    shape: tuple
    dtype: str
    offset: int

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


class Layout:
    """Named arrays at aligned offsets; a plain value that can be sent to a worker."""

    def __init__(self, specs):
        fields = []
        off = 0
        seen = set()
        for name, shape, dtype in specs:
            if name in seen:
                raise ValueError(f"array {name!r} declared twice in the arena layout")
            seen.add(name)
            shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
            dt = np.dtype(dtype)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            align = PAGE if nbytes >= PAGE else LINE
            off = (off + align - 1) // align * align
            fields.append(Field(name, shape, dt.str, off))
            off += max(nbytes, 1)
        self.fields = tuple(fields)
        self.size = max((off + PAGE - 1) // PAGE * PAGE, PAGE)

    def views(self, buf) -> dict[str, np.ndarray]:
        return {f.name: np.ndarray(f.shape, dtype=f.dtype, buffer=buf, offset=f.offset)
                for f in self.fields}


def _cleanup_all():
    for a in list(_live):
        a.close()


def _on_signal(signum, frame):
    _cleanup_all()
    # Re-deliver with the default action so the exit status says what killed us.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_cleanup_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread
            pass


class Arena:
    """A shared-memory segment and the numpy views of its arrays."""

    def __init__(self, shm: shared_memory.SharedMemory, layout: Layout, owner: bool):
        self._shm = shm
        self.layout = layout
        self.owner = owner
        self.name = shm.name
        self._unlinked = not owner
        self._pid = os.getpid()
        self.arrays = layout.views(shm.buf)

    @classmethod
    def create(cls, layout: Layout, prefault: bool = True, unlinked: bool = False) -> "Arena":
        """A new segment; ``unlinked``: remove its name at once (forked workers and threads
        inherit the mapping), so that nothing, not even kill -9, can leave it behind.

        Stop signals are held while the segment is created and registered (and, with
        ``unlinked``, its name removed): a Ctrl-C can never land between shm_open and the
        moment the segment is known to the cleanup hooks.
        """
        _install_handlers()
        name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        held = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        try:
            old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        except (AttributeError, OSError, ValueError):
            old = None
        try:
            shm = shared_memory.SharedMemory(name=name, create=True, size=layout.size)
            arena = cls(shm, layout, owner=True)
            _live.add(arena)
            if unlinked:
                arena.unlink()
        finally:
            if old is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        try:
            if prefault:
                # First touch through the hypervisor is slow: fault everything in now,
                # not inside a measured window.
                np.ndarray((layout.size,), dtype=np.uint8, buffer=shm.buf)[::PAGE] = 0
        except BaseException:
            arena.close()
            raise
        return arena

    @classmethod
    def attach(cls, name: str, layout: Layout) -> "Arena":
        """Map an existing segment by name (a worker started by spawn, or a tool)."""
        shm = shared_memory.SharedMemory(name=name, create=False)
        # Python 3.11 registers attached segments with the resource tracker, which
        # would unlink them when this process exits: only the creator owns the name.
        # A multiprocessing child shares its parent's tracker, so it must not undo
        # the parent's registration; nor must the creating process itself.
        import multiprocessing
        ours = any(a.name == shm.name and a.owner for a in list(_live))
        if not ours and multiprocessing.parent_process() is None:
            try:
                from multiprocessing import resource_tracker
                resource_tracker.unregister(shm._name, "shared_memory")  # noqa: SLF001
            except Exception:
                pass
        if shm.size < layout.size:
            shm.close()
            raise ValueError(f"segment {name} is smaller than its layout")
        return cls(shm, layout, owner=False)

    def unlink(self) -> None:
        """Remove the name; the memory stays mapped until every process closes it."""
        if self.owner and not self._unlinked and os.getpid() == self._pid:
            self._unlinked = True
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        if os.getpid() != self._pid:
            return  # a forked child never tears down the parent's segment
        self.unlink()
        self.arrays = {}
        try:
            self._shm.close()
        except BufferError:
            # A caller still holds a view; the mapping goes with the process.
            pass
        _live.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def leaked_segments() -> list[str]:
    """Names of ``mmbench-`` segments present in /dev/shm (for tests and doctor checks)."""
    try:
        return sorted(n for n in os.listdir("/dev/shm") if n.startswith(PREFIX))
    except FileNotFoundError:
        return []
