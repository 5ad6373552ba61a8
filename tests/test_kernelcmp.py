"""Model vs kernel (mmbench.kernelcmp), its plot/report hooks, and pagealloc's pcp_from_box."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from mmbench import kernelcmp as K
from mmbench import procfs

from synth import make_doc

FIX = Path(__file__).parent / "fixtures" / "procfs"
N_BOOT = 60
BOX_PCP = {"node": 0, "zone": "Normal", "managed": 900000, "cpus": 2, "batch": 63,
           "high": 4553, "high_min": 4553, "high_max": 57344, "autotune": True}


def exact_doc(workload, model, rates, params=None, extra=None, nproc=2, machine=None):
    """A schema-v1 document whose interval rates are exactly ``rates``.

    rates: {(variant, mode): {workers: [ops/s of each interval]}}; every interval lasts
    1 s and its ops are split evenly over the workers (rates are multiples of workers).
    """
    base = make_doc(workload, model, series={"x": (1e6, 0.0, 0.0)}, workers=(1,), repeats=1,
                    intervals=2, counters=False, nproc=nproc, machine=machine)
    tmpl = base["points"][0]
    points = []
    for (variant, mode), by_n in rates.items():
        for n, rs in by_n.items():
            p = copy.deepcopy(tmpl)
            ops = [int(r) for r in rs]
            assert all(o % n == 0 for o in ops)
            p.update(variant=variant, mode=mode, workers=n, params=dict(params or {}),
                     oversubscribed=n > nproc, cpu_map=[i % nproc for i in range(n)],
                     interval_times=[1.0] * len(rs), samples=[[o // n] * n for o in ops])
            p["summary"]["per_worker_ops_per_s"] = [sum(rs) / len(rs) / n] * n
            p["summary"]["total_ops"] = sum(ops)
            p["summary"]["jain"] = 1.0
            if extra:
                p["extra"] = extra(variant)
            points.append(p)
    base["points"] = points
    return base


def kernel_doc(rates=None, machine=None):
    rates = rates or {
        ("4k", "process"): {1: [80, 120], 2: [180, 180], 4: [200, 200]},
        ("4k", "thread"): {1: [100, 100], 2: [150, 150], 4: [160, 160]},
        ("thp", "process"): {1: [40, 40], 2: [80, 80], 4: [80, 80]},
        ("thp", "thread"): {1: [40, 40], 2: [60, 60], 4: [40, 40]},
        ("shmem", "process"): {1: [40, 40], 2: [80, 80]},   # not part of the comparison
    }
    return exact_doc("kernel-pagefault", "kernelpf", rates, params={"region_mib": 128},
                     extra=lambda v: {"pcp": BOX_PCP,
                                      "base_pages_per_op": 512 if v == "thp" else 1},
                     machine=machine)


def model_doc(rates=None, pcp_extra=None):
    rates = rates or {
        ("pcp-autotune", "process"): {1: [1000, 1000], 2: [1900, 1900], 4: [2000, 2000]},
        ("buddy", "process"): {1: [600, 600], 2: [600, 600], 4: [400, 400]},
        ("llfree", "process"): {1: [800, 800], 2: [1600, 1600]},   # not shown
    }
    box = pcp_extra or {"batch": 63, "high": 57344, "source": "/proc/zoneinfo"}
    return exact_doc("pagealloc-vs-kernel", "pagealloc", rates,
                     params={"workload": "pagefault", "order": 0, "pcp_from_box": True,
                             "batch": 63, "high": 57344},
                     extra=lambda v: {"pcp_from_box": box} if v.startswith("pcp-") else {})


def _assert_image(p: Path) -> None:
    assert p.exists() and p.stat().st_size > 1000, p
    if p.suffix == ".png":
        assert p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), p
    else:
        assert b"<svg" in p.read_bytes()[:2000], p


@pytest.fixture(scope="module")
def cmp():
    return K.compare([kernel_doc(), model_doc()], n_boot=N_BOOT)


def _speedup(c: K.Curve, n: int) -> float:
    return float(c.scaling.speedup[c.index(n)])


def test_speedups_match_hand_computation(cmp):
    by = {c.name: c for c in cmp.kernel + cmp.model}
    assert list(by) == ["kernel 4k (process)", "kernel 4k (thread)", "kernel thp (process)",
                        "kernel thp (thread)", "model pcp-autotune (box batch/high)",
                        "model buddy (kernel without PCP)"]
    # X(1) of 4k process is the harmonic mean of 80 and 120 ops/s: 96
    k4p = by["kernel 4k (process)"]
    assert k4p.scaling.throughput[0] == pytest.approx(96.0)
    assert _speedup(k4p, 2) == pytest.approx(180 / 96)
    assert _speedup(k4p, 4) == pytest.approx(200 / 96)
    assert _speedup(by["kernel 4k (thread)"], 2) == pytest.approx(1.5)
    assert _speedup(by["kernel thp (process)"], 2) == pytest.approx(2.0)
    assert _speedup(by["kernel thp (thread)"], 4) == pytest.approx(1.0)
    assert _speedup(by["model pcp-autotune (box batch/high)"], 2) == pytest.approx(1.9)
    assert _speedup(by["model buddy (kernel without PCP)"], 4) == pytest.approx(400 / 600)
    # constant interval rates: the bootstrap band collapses onto the value
    pcp = by["model pcp-autotune (box batch/high)"]
    assert np.allclose(pcp.scaling.speedup_ci, pcp.scaling.speedup[None, :])
    # varying rates at N=1: a band of non-zero width around the value
    lo, hi = k4p.scaling.speedup_ci[:, 1]
    assert lo < 180 / 96 < hi


def test_ratios_match_hand_computation(cmp):
    r = {x.kernel.name: x for x in cmp.ratios}
    assert list(r) == ["kernel 4k (process)", "kernel 4k (thread)", "kernel thp (process)",
                       "kernel thp (thread)"]
    assert all(x.model.role == "pcp" for x in cmp.ratios)
    assert r["kernel 4k (thread)"].ratio.tolist() == pytest.approx([1.0, 1.9 / 1.5, 2.0 / 1.6])
    assert r["kernel thp (process)"].ratio.tolist() == pytest.approx([1.0, 0.95, 1.0])
    assert r["kernel thp (thread)"].ratio.tolist() == pytest.approx([1.0, 1.9 / 1.5, 2.0])
    k = r["kernel 4k (process)"]
    assert k.ratio.tolist() == pytest.approx([1.0, 1.9 / (180 / 96), 2.0 / (200 / 96)])
    # the ratio's interval brackets it; the kernel side's noise makes it non-degenerate
    assert np.all(k.ci[0] <= k.ratio + 1e-12) and np.all(k.ratio <= k.ci[1] + 1e-12)
    assert k.ci[1, 1] > k.ci[0, 1]


def test_table_shape_and_formats(cmp):
    head, rows = K.table(cmp)
    assert len(head) == 1 + 4 + 2 + 4
    assert head[0] == "workers" and head[-1] == "ratio model/kernel thp (thread)"
    assert [r[0] for r in rows] == ["1", "2", "4*"]       # 4 workers on 2 CPUs
    assert all(len(r) == len(head) for r in rows)
    assert rows[1][head.index("model pcp-autotune (box batch/high)")] == "1.90 [1.90, 1.90]"
    assert rows[2][head.index("ratio model/kernel thp (thread)")] == "2.00 [2.00, 2.00]"
    md = K.format_table(cmp, "md")
    lines = [x for x in md.splitlines() if x.startswith("|")]
    assert len(lines) == 2 + 3 and all(x.count("|") == len(head) + 1 for x in lines)
    assert "batch 63, high 57344" in md
    term = K.format_table(cmp, "term")
    assert "kernel thp (thread)" in term and "N=4*" in term
    with pytest.raises(ValueError):
        K.format_table(cmp, "html")


def test_missing_worker_count_is_a_dash():
    kd = kernel_doc({("4k", "process"): {1: [100, 100], 2: [180, 180], 4: [200, 200]}})
    md = model_doc({("pcp-autotune", "process"): {1: [1000, 1000], 2: [1800, 1800]}})
    c = K.compare([kd, md], n_boot=N_BOOT)
    head, rows = K.table(c)
    assert head == ["workers", "kernel 4k (process)", "model pcp-autotune (box batch/high)",
                    "ratio model/kernel 4k (process)"]
    assert rows[1][3] == "1.00 [1.00, 1.00]"
    assert rows[2][2] == "–" and rows[2][3] == "–"
    assert any("no pcp" in n for n in K.compare(
        [kd, model_doc({("buddy", "process"): {1: [10, 10], 2: [10, 10]}})]).notes)


def test_nothing_without_both_kinds(tmp_path):
    assert K.compare([kernel_doc()]) is None
    assert K.compare([model_doc()]) is None
    # a pagealloc result of another workload is not the model side
    other = model_doc()
    for p in other["points"]:
        p["params"]["workload"] = "bulk"
    assert K.compare([kernel_doc(), other]) is None
    assert K.plot_model_vs_kernel([kernel_doc()], tmp_path) == []
    assert not list(tmp_path.iterdir())


def test_notes_flag_other_machines_and_other_pcp_settings():
    from synth import MACHINE

    c = K.compare([kernel_doc(machine=dict(MACHINE, name="other-box")),
                   model_doc(pcp_extra={"batch": 31, "high": 1000, "source": "/proc/zoneinfo"})],
                  n_boot=N_BOOT)
    text = " ".join(c.notes)
    assert "different machines" in text and "other-box" in text
    assert "31/1000" in text and "63/57344" in text
    assert not any("different" in n for n in K.compare([kernel_doc(), model_doc()]).notes)


def test_plot_files_are_written(tmp_path, cmp):
    files = K.plot_comparison(cmp, tmp_path)
    assert sorted(p.name for p in files) == ["model-vs-kernel.png", "model-vs-kernel.svg"]
    for p in files:
        _assert_image(p)
    svg = (tmp_path / "model-vs-kernel.svg").read_text()
    for must in ("linear ideal", "oversubscribed", "kernel without PCP", "kernel 4k (thread)",
                 "model speedup / kernel speedup", "workers"):
        assert must in svg, must


def _write(tmp_path, docs):
    paths = []
    for name, d in docs.items():
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(d))
        paths.append(p)
    return paths


def test_plot_and_report_show_the_view_only_with_both(tmp_path):
    from mmbench.plot import plot_files
    from mmbench.report import write_report

    both = _write(tmp_path, {"kpf": kernel_doc(), "pa": model_doc()})
    stems = {p.stem for p in plot_files(both, tmp_path / "p1", n_boot=20)}
    assert "model-vs-kernel" in stems and "kernel-pagefault-throughput" in stems
    html = write_report(both, tmp_path / "r1", n_boot=20).read_text()
    assert 'id="x-model-vs-kernel"' in html and "plots/model-vs-kernel.png" in html
    assert "ratio model/kernel 4k (process)" in html and "kernel without PCP" in html
    assert (tmp_path / "r1" / "plots" / "model-vs-kernel.png").exists()

    one = both[:1]
    stems = {p.stem for p in plot_files(one, tmp_path / "p2", n_boot=20)}
    assert "model-vs-kernel" not in stems and "kernel-pagefault-throughput" in stems
    html = write_report(one, tmp_path / "r2", n_boot=20).read_text()
    assert "model-vs-kernel" not in html and "model vs kernel" not in html


# --------------------------------------------------------------------------- pcp_from_box

@pytest.fixture
def zoneinfo(monkeypatch):
    """Point procfs at a zoneinfo fixture (or at nothing) for the model's resolve/setup."""
    def use(name):
        zones = procfs.parse_zoneinfo((FIX / name).read_text()) if name else []
        monkeypatch.setattr(procfs, "read_zoneinfo", lambda path=procfs.ZONEINFO: zones)
    return use


def test_pcp_from_box_takes_batch_and_high_from_zoneinfo(zoneinfo):
    from mmbench.ctl import CTL_WORDS
    from mmbench.models import pcp as P
    from mmbench.models.pagealloc import PageAllocModel

    m = PageAllocModel()
    base = {"nframes": 1 << 15, "workload": "pagefault", "data_pages": 16}
    zoneinfo("zoneinfo-6.18-autotune.txt")
    p = m.resolve("pcp-autotune", dict(base, pcp_from_box=True))
    assert (p["batch"], p["high"]) == (63, 57344)                 # high = high_max on 6.7+
    assert m.resolve("pcp-autotune", base)["batch"] == 0           # off by default
    assert m.resolve("buddy", dict(base, pcp_from_box=True))["batch"] == 0   # no pageset
    with pytest.raises(ValueError, match="leave batch at 0"):
        m.resolve("pcp-autotune", dict(base, pcp_from_box=True, batch=31))
    assert m.resolve("pcp-autotune", dict(base, pcp_from_box=True, batch=63))["batch"] == 63

    arrays = {s.name: np.zeros(s.shape, s.dtype) for s in m.layout(p, 1)}
    arrays["ctl"] = np.zeros(CTL_WORDS, np.int64)
    arrays["counters"] = np.zeros((1, m.counter_columns()), np.int64)
    m.setup(arrays, p, 1, seed=1)
    assert arrays["pcp"][P.P_BATCH] == 63 and arrays["pcp"][P.P_HIGH_MAX] == 57344
    extra = m.report(arrays, p, 1)["extra"]
    assert extra["pcp_from_box"] == {"batch": 63, "high": 57344, "source": "/proc/zoneinfo"}
    assert "pcp_from_box" not in m.report(arrays, m.resolve("pcp-autotune", base), 1)["extra"]

    zoneinfo("zoneinfo-5.4-classic.txt")
    p = m.resolve("pcp-classic", dict(base, pcp_from_box=True))
    assert (p["batch"], p["high"]) == (63, 378)


def test_pcp_from_box_without_pagesets_is_not_runnable(zoneinfo):
    from mmbench.harness import RunConfig, run_point
    from mmbench.model import ModelNotRunnable
    from mmbench.models.pagealloc import PageAllocModel

    m = PageAllocModel()
    zoneinfo(None)
    p = m.resolve("pcp-autotune", {"nframes": 1 << 14, "workload": "pagefault",
                                    "data_pages": 16, "pcp_from_box": True})
    assert (p["batch"], p["high"]) == (0, 0)
    with pytest.raises(ModelNotRunnable, match="zoneinfo"):
        m.setup({}, p, 1, seed=1)
    # the harness records the refusal as a result and runs nothing
    rec = run_point(m, "pcp-autotune", p, RunConfig(workers=1, duration=0.05, warmup=0.0))
    assert rec["error"].startswith("not runnable: pcp_from_box") and rec["samples"] == []


def test_workload_file_compares_pcp_from_box_with_buddy(zoneinfo):
    from mmbench.workload import expand, find, load

    zoneinfo("zoneinfo-6.18-autotune.txt")
    wl = load(find("pagealloc-vs-kernel"))
    assert wl.quick is False and wl.model == "pagealloc"
    pts = expand(wl, cpus=2)
    assert {(x.variant, x.workers) for x in pts} == {(v, n) for v in ("pcp-autotune", "buddy")
                                                     for n in (1, 2)}
    pcp = [x for x in pts if x.variant == "pcp-autotune"]
    assert all(x.params["workload"] == "pagefault" and x.params["order"] == 0 for x in pts)
    assert all((x.params["batch"], x.params["high"]) == (63, 57344) for x in pcp)
