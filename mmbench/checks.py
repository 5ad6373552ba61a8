"""Command-line values and paths, checked before any work starts.

Every function raises :class:`UsageError` with one line naming the flag, the
value and what is allowed; the CLI prints it and exits 2.  Nothing here imports
numba or starts anything, so a bad value costs milliseconds, not a sweep.
"""
from __future__ import annotations

import math
import os
from pathlib import Path


class UsageError(ValueError):
    """Bad command-line input: one line, exit code 2."""


def number(flag: str, text, lo: float, hi: float, *, lo_open: bool = False,
           unit: str = "") -> float:
    """A finite float in [lo, hi] (or (lo, hi] when ``lo_open``)."""
    allowed = f"a finite number in {'(' if lo_open else '['}{lo:g}, {hi:g}]{unit}"
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise UsageError(f"{flag}: {text!r} is not a number (allowed: {allowed})") from None
    if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
        raise UsageError(f"{flag}: {text!r} is out of range (allowed: {allowed})")
    return v


def integer(flag: str, text, lo: int, hi: int) -> int:
    allowed = f"an integer in [{lo}, {hi}]"
    try:
        v = int(str(text).strip(), 10)
    except (TypeError, ValueError):
        raise UsageError(f"{flag}: {text!r} is not an integer (allowed: {allowed})") from None
    if not lo <= v <= hi:
        raise UsageError(f"{flag}: {text!r} is out of range (allowed: {allowed})")
    return v


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _writable_dir(d: Path) -> bool:
    return os.access(d, os.W_OK | os.X_OK)


def new_file(flag: str, path, overwrite: bool = False) -> Path:
    """``path`` may be created: its folder exists and is writable, and (unless
    ``overwrite``) no file is there yet."""
    p = Path(path)
    if str(path) == "":
        raise UsageError(f"{flag}: empty path")
    if p.is_dir():
        raise UsageError(f"{flag}: {p} is a directory, not a file name")
    if p.exists() and not overwrite:
        raise UsageError(f"{flag}: {p} exists; refusing to overwrite (choose another name)")
    parent = p.absolute().parent
    if not parent.exists():
        raise UsageError(f"{flag}: folder {parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"{flag}: {parent} is not a folder")
    if not _writable_dir(parent):
        raise UsageError(f"{flag}: folder {parent} is not writable")
    return p


def out_dir(flag: str, path) -> Path:
    """``path`` is a folder that exists and is writable, or can be created."""
    p = Path(path)
    if str(path) == "":
        raise UsageError(f"{flag}: empty path")
    if p.exists():
        if not p.is_dir():
            raise UsageError(f"{flag}: {p} exists and is not a folder")
        if not _writable_dir(p):
            raise UsageError(f"{flag}: folder {p} is not writable")
        return p
    base = _nearest_existing(p)
    if not base.is_dir():
        raise UsageError(f"{flag}: cannot create {p}: {base} is not a folder")
    if not _writable_dir(base):
        raise UsageError(f"{flag}: cannot create {p}: folder {base} is not writable")
    return p


def in_dir(flag: str, path) -> Path:
    """``path`` is an existing, readable folder."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{flag}: {p} does not exist")
    if not p.is_dir():
        raise UsageError(f"{flag}: {p} is not a folder")
    if not os.access(p, os.R_OK | os.X_OK):
        raise UsageError(f"{flag}: folder {p} is not readable")
    return p
