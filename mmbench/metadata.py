"""Facts about the machine and the software a result was measured with.

A scalability curve means nothing without the box it came from: the CPU model,
the topology (a curve bends where a socket or SMT sibling is reached), the
kernel's THP and cpufreq settings, whether it ran in a VM.  Everything here is
read from /proc and /sys without privileges and degrades to None where a file is
missing (containers, non-Linux); nothing here may make a benchmark fail.

``CHECKED_KEYS`` are the facts that must match before two results are compared,
as pyperf refuses to merge runs whose checked metadata differ.
"""
from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path

# Keys that must be equal for two results to be compared as "same machine".
CHECKED_KEYS = ("name", "cpu_model", "nproc", "topology", "kernel")

_SYS_CPU = Path("/sys/devices/system/cpu")
_SYS_NODE = Path("/sys/devices/system/node")


def _read(path, default=None):
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return default


def sanitize_name(name: str) -> str:
    """A filesystem-safe, lower-case name: [a-z0-9._-] only, never empty or dotted.

    Used for results/<machine>/ and file names, so it must not contain '/' or
    start with '.' (hidden files, '..').
    """
    s = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip(".-")
    return s or "unknown"


def _machine_name(hostname: str) -> str:
    # MMBENCH_MACHINE lets a lab give one box a stable name across hostname changes.
    override = os.environ.get("MMBENCH_MACHINE")
    return sanitize_name(override or hostname.split(".")[0])


def _cpuinfo() -> tuple[str | None, bool | None]:
    """(model name, hypervisor flag present) from /proc/cpuinfo."""
    text = _read("/proc/cpuinfo")
    if text is None:
        return (platform.processor() or platform.machine() or None), None
    model = None
    virt = False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if model is None and key in ("model name", "Model", "cpu model", "uarch"):
            model = value.strip() or None
        elif key in ("flags", "Features") and "hypervisor" in value.split():
            virt = True
    return model or platform.processor() or platform.machine() or None, virt


def _topology() -> dict:
    """Sockets, cores per socket, threads per core and NUMA nodes of the online CPUs.

    Derived from each online CPU's topology/{physical_package_id,core_id}; values
    are None where sysfs does not say (some containers hide it).
    """
    cores = set()
    packages = set()
    cpus = 0
    try:
        entries = [p for p in _SYS_CPU.glob("cpu[0-9]*") if (p / "topology").is_dir()]
    except OSError:
        entries = []
    for p in entries:
        pkg = _read(p / "topology" / "physical_package_id")
        core = _read(p / "topology" / "core_id")
        if pkg is None or core is None:
            continue
        cpus += 1
        packages.add(pkg)
        cores.add((pkg, core))
    try:
        nodes = len([p for p in _SYS_NODE.glob("node[0-9]*") if p.is_dir()]) or None
    except OSError:
        nodes = None
    if not cpus:
        return {"sockets": None, "cores_per_socket": None, "threads_per_core": None,
                "numa_nodes": nodes}
    return {"sockets": len(packages),
            "cores_per_socket": len(cores) // len(packages),
            "threads_per_core": cpus // len(cores),
            "numa_nodes": nodes}


def _memory_total_bytes() -> int | None:
    text = _read("/proc/meminfo") or ""
    m = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.M)
    return int(m.group(1)) * 1024 if m else None


def _os_name() -> str:
    text = _read("/etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.M)
    return m.group(1) if m else platform.system()


def _bracketed(path) -> str | None:
    """The selected value of a sysfs choice file such as 'always [madvise] never'."""
    text = _read(path)
    if text is None:
        return None
    m = re.search(r"\[([^\]]+)\]", text)
    return m.group(1) if m else text


def _governors(cpus) -> str | None:
    """cpufreq governors in use on the allowed CPUs ('performance', or 'a,b' if mixed)."""
    found = sorted({g for c in cpus
                    if (g := _read(_SYS_CPU / f"cpu{c}" / "cpufreq" / "scaling_governor"))})
    return ",".join(found) or None


def _int_or_none(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _version(dist: str) -> str | None:
    """A distribution's version without importing it (numba takes ~0.5 s to import)."""
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        try:
            return __import__(dist).__version__
        except Exception:   # noqa: BLE001 - metadata must never fail
            return None


def git_info(path: Path | None = None) -> dict | None:
    """{commit, short, dirty} of the git checkout the package lives in, else None.

    Only when the package directory sits at the top of the work tree: a package
    installed into a virtualenv that happens to be inside some other repository
    must not report that repository's commit.  ``dirty`` means tracked files differ
    from the commit (mmbench.SOURCE_HASH pins the exact sources in any case).
    A repository without commits yet gives commit None.
    """
    pkg = (path or Path(__file__)).resolve().parent

    def git(*args):
        return subprocess.run(["git", "-C", str(pkg), *args], capture_output=True,
                              text=True, timeout=10, check=False)
    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != pkg.parent:
            return None
        head = git("rev-parse", "--verify", "-q", "HEAD")
        commit = head.stdout.strip() if head.returncode == 0 else None
        status = git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "short": commit[:12] if commit else None, "dirty": dirty}


def machine_metadata() -> dict:
    """Everything known about this machine and software; every value JSON-serialisable."""
    import mmbench

    hostname = socket.gethostname()
    cpu_model, virt = _cpuinfo()
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = list(range(os.cpu_count() or 1))
    return {
        "name": _machine_name(hostname),
        "hostname": hostname,
        "cpu_model": cpu_model,
        "arch": platform.machine(),
        "nproc": os.cpu_count(),
        "allowed_cpus": allowed,
        "topology": _topology(),
        "kernel": platform.release(),
        "os": _os_name(),
        "memory_total_bytes": _memory_total_bytes(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "llvmlite": _version("llvmlite"),
        "mmbench": mmbench.__version__,
        "source_hash": mmbench.SOURCE_HASH,
        "git": git_info(),
        "aslr": _int_or_none(_read("/proc/sys/kernel/randomize_va_space")),
        "cpufreq_governor": _governors(allowed),
        "thp": _bracketed("/sys/kernel/mm/transparent_hugepage/enabled"),
        "thp_defrag": _bracketed("/sys/kernel/mm/transparent_hugepage/defrag"),
        "numa_balancing": _int_or_none(_read("/proc/sys/kernel/numa_balancing")),
        "isolated_cpus": _read(_SYS_CPU / "isolated") or None,
        "virtualized": virt,
        "executable": sys.executable,
    }


def checked_differences(a: dict, b: dict) -> list[str]:
    """Lines 'key: A != B' for each CHECKED_KEYS fact on which two machines differ."""
    return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in CHECKED_KEYS if a.get(k) != b.get(k)]
