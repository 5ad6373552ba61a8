"""Read-only views of the running kernel's page-allocator state.

Parsers for ``/proc/vmstat`` and ``/proc/zoneinfo`` plus the few sysfs/sysctl
files that say how the box's page allocator is configured: the THP mode, the
per-CPU pageset (``per_cpu_pages``) batch/high of each zone and
``vm.percpu_pagelist_high_fraction``.  Nothing here writes a file or changes a
sysctl; every reader returns None (or {}) where a file is missing, so a
benchmark never fails for want of a fact.

The zoneinfo parser accepts every format since 4.x:

* ≤ 6.6: ``pagesets`` / ``cpu: N`` / ``count:`` / ``high:`` / ``batch:``
* 6.7+ (PCP auto-tuning): also ``high_min:`` / ``high_max:`` per CPU, and
  ``high`` then moves between them at run time.
"""
from __future__ import annotations

import os
import re
import statistics
from pathlib import Path

VMSTAT = "/proc/vmstat"
ZONEINFO = "/proc/zoneinfo"
THP_DIR = "/sys/kernel/mm/transparent_hugepage"

#: /proc/vmstat counters a page-fault run moves (prefixes; whichever exist on this kernel).
FAULT_VMSTAT_PREFIXES = (
    "pgalloc_", "pgfree", "pgfault", "pgmajfault", "pgactivate", "pgdeactivate",
    "thp_fault_", "thp_split", "thp_deferred_split", "thp_file_", "thp_zero_",
    "compact_", "zone_reclaim_", "allocstall", "pgscan_", "pgsteal_", "kswapd_",
    "pageoutrun", "numa_hit", "numa_miss", "numa_local", "numa_other", "nr_free_pages",
    "nr_anon_pages", "nr_anon_transparent_hugepages", "nr_shmem", "nr_page_table_pages",
)

_PCP_FIELDS = ("count", "high", "batch", "high_min", "high_max")


# --- /proc/vmstat ------------------------------------------------------------------------
def parse_vmstat(text: str) -> dict[str, int]:
    """``name value`` lines -> {name: value}; malformed lines are skipped."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def read_vmstat(path: str = VMSTAT) -> dict[str, int]:
    """A snapshot of /proc/vmstat ({} where it cannot be read)."""
    try:
        return parse_vmstat(Path(path).read_text())
    except OSError:
        return {}


def select_vmstat(stats: dict[str, int], prefixes=FAULT_VMSTAT_PREFIXES) -> dict[str, int]:
    """The entries whose name starts with one of ``prefixes``."""
    return {k: v for k, v in stats.items() if k.startswith(tuple(prefixes))}


def vmstat_delta(before: dict[str, int], after: dict[str, int],
                 prefixes=None) -> dict[str, int]:
    """after - before for every counter present in both (optionally only ``prefixes``).

    Event counters (pgalloc_*, pgfault, ...) only grow; ``nr_*`` entries are
    gauges, whose delta is the net change over the window.  Note that both are
    system-wide: whatever else runs on the box is counted too.
    """
    keys = [k for k in after if k in before]
    if prefixes is not None:
        keys = [k for k in keys if k.startswith(tuple(prefixes))]
    return {k: after[k] - before[k] for k in keys}


def pgalloc_total(stats: dict[str, int]) -> int:
    """Sum of pgalloc_<zone>: base pages allocated (an order-n allocation counts 2^n)."""
    return sum(v for k, v in stats.items() if k.startswith("pgalloc_"))


# --- /proc/zoneinfo ----------------------------------------------------------------------
_ZONE_RE = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)")
_KV_RE = re.compile(r"^\s*([A-Za-z_]+):?\s+(-?\d+)\s*$")


def parse_zoneinfo(text: str) -> list[dict]:
    """One dict per zone, in file order.

    Keys: ``node``, ``zone``, ``free`` (``pages free``), the watermarks ``min`` /
    ``low`` / ``high`` (and ``boost`` / ``promo`` where printed), ``spanned``,
    ``present``, ``managed``, ``protection`` (list), ``stats`` (the zone's
    ``nr_*`` / ``numa_*`` counters), ``pcp`` (one dict per CPU with ``cpu``,
    ``count``, ``high``, ``batch`` and, on 6.7+, ``high_min`` / ``high_max``)
    and ``start_pfn`` where printed.  The per-node stats block that precedes
    the first zone of each node is left out.
    """
    zones: list[dict] = []
    zone = None
    section = None          # None | "node" | "zone" | "pagesets"
    cpu = None
    for raw in text.splitlines():
        m = _ZONE_RE.match(raw)
        if m:
            zone = {"node": int(m.group(1)), "zone": m.group(2), "protection": [],
                    "stats": {}, "pcp": []}
            zones.append(zone)
            section, cpu = "zone", None
            continue
        if zone is None:
            continue
        line = raw.strip()
        if not line:
            continue
        if line == "per-node stats":
            section = "node"
            continue
        if line.startswith("pages free"):
            section = "zone"
            zone["free"] = int(line.split()[-1])
            continue
        if line == "pagesets":
            section = "pagesets"
            continue
        if line.startswith("protection:"):
            nums = re.findall(r"-?\d+", line)
            zone["protection"] = [int(x) for x in nums]
            continue
        if line.startswith("cpu:"):
            cpu = {"cpu": int(line.split()[-1])}
            zone["pcp"].append(cpu)
            section = "pagesets"
            continue
        if line.startswith("vm stats threshold:"):
            zone["stat_threshold"] = int(line.split()[-1])
            continue
        if line.startswith(("node_unreclaimable:", "start_pfn:", "all_unreclaimable:")):
            key, _, val = line.partition(":")
            try:
                zone[key] = int(val.split()[0])
            except (ValueError, IndexError):
                pass
            section = "tail"
            continue
        m = _KV_RE.match(raw)
        if not m:
            continue
        key, val = m.group(1), int(m.group(2))
        if section == "node":
            continue
        if section == "pagesets" and cpu is not None and key in _PCP_FIELDS:
            cpu[key] = val
        elif section == "zone":
            if key in ("min", "low", "high", "boost", "promo", "spanned", "present",
                       "managed", "cma", "scanned"):
                zone[key] = val
            else:
                zone["stats"][key] = val
    return zones


def read_zoneinfo(path: str = ZONEINFO) -> list[dict]:
    try:
        return parse_zoneinfo(Path(path).read_text())
    except OSError:
        return []


def main_zone(zones: list[dict]) -> dict | None:
    """The zone with the most managed pages (Normal on a typical x86-64 box)."""
    populated = [z for z in zones if z.get("managed", 0) > 0 and z["pcp"]]
    if not populated:
        return None
    return max(populated, key=lambda z: z["managed"])


def pcp_summary(zones: list[dict]) -> dict | None:
    """The per-CPU pageset settings of the main zone.

    ``batch`` and ``high`` are the medians over CPUs, ``high_per_cpu`` the list;
    ``high_min`` / ``high_max`` are present only on kernels that print them
    (6.7+ auto-tuning), and ``autotune`` says which kind of kernel this is.
    """
    z = main_zone(zones)
    if z is None:
        return None
    pcp = z["pcp"]
    out = {
        "node": z["node"], "zone": z["zone"], "managed": z["managed"], "cpus": len(pcp),
        "batch": int(statistics.median(c["batch"] for c in pcp if "batch" in c)),
        "high": int(statistics.median(c["high"] for c in pcp if "high" in c)),
        "high_per_cpu": [c.get("high") for c in pcp],
        "count_per_cpu": [c.get("count") for c in pcp],
        "autotune": all("high_min" in c and "high_max" in c for c in pcp),
    }
    if out["autotune"]:
        out["high_min"] = int(statistics.median(c["high_min"] for c in pcp))
        out["high_max"] = int(statistics.median(c["high_max"] for c in pcp))
    return out


def pcp_settings_for_model(zones: list[dict] | None = None) -> dict:
    """``{"batch": b, "high": h}`` for a pagealloc model point "configured like this box".

    ``high`` is the pcp-autotune model's meaning of the parameter on a 6.7+
    kernel (``high_max``: the ceiling auto-tuning moves ``high`` towards) and the
    fixed per-CPU ``high`` otherwise.  The box's values belong to its zone size
    (``managed`` pages) and CPU count: a model zone of another size would get
    other values from the kernel.  {} when /proc/zoneinfo cannot be read.
    """
    s = pcp_summary(read_zoneinfo() if zones is None else zones)
    if s is None:
        return {}
    return {"batch": s["batch"], "high": s["high_max"] if s["autotune"] else s["high"]}


# --- sysfs / sysctl ------------------------------------------------------------------------
def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def bracketed(text: str | None) -> str | None:
    """The selected word of a sysfs choice file: ``always [madvise] never`` -> madvise."""
    if text is None:
        return None
    m = re.search(r"\[([^\]]+)\]", text)
    return m.group(1) if m else (text.split()[0] if text.split() else None)


def thp_mode(root: str = THP_DIR) -> str | None:
    """transparent_hugepage/enabled: always, madvise or never (None: no THP)."""
    return bracketed(_read(f"{root}/enabled"))


def thp_settings(root: str = THP_DIR) -> dict:
    """THP enabled / defrag / shmem_enabled, the PMD size and the 2 MiB mTHP setting."""
    pmd = _read(f"{root}/hpage_pmd_size")
    return {
        "enabled": thp_mode(root),
        "defrag": bracketed(_read(f"{root}/defrag")),
        "shmem_enabled": bracketed(_read(f"{root}/shmem_enabled")),
        "hpage_pmd_size": int(pmd) if pmd and pmd.isdigit() else None,
        "pmd_mthp_enabled": bracketed(_read(f"{root}/hugepages-2048kB/enabled")),
    }


def percpu_pagelist_high_fraction() -> int | None:
    """vm.percpu_pagelist_high_fraction (5.14+; 0 = the kernel's default sizing)."""
    v = _read("/proc/sys/vm/percpu_pagelist_high_fraction")
    if v is None:  # before 5.14 the sysctl was percpu_pagelist_fraction
        v = _read("/proc/sys/vm/percpu_pagelist_fraction")
    return int(v) if v is not None and v.lstrip("-").isdigit() else None


def kernel_release() -> str:
    return os.uname().release


def box_facts() -> dict:
    """Everything above in one JSON-ready dict (read-only)."""
    zones = read_zoneinfo()
    return {
        "kernel": kernel_release(),
        "thp": thp_settings(),
        "percpu_pagelist_high_fraction": percpu_pagelist_high_fraction(),
        "pcp": pcp_summary(zones),
        "page_size": os.sysconf("SC_PAGE_SIZE"),
    }
