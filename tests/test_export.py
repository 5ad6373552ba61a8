"""Exports: pyperf JSON that pyperf's own CLI accepts, will-it-scale CSV."""
import copy
import csv
import statistics
import subprocess
import sys
from pathlib import Path

import pyperf
import pytest

from mmbench import export, results
from mmbench.results import ResultError

FIXTURE = Path(__file__).parent / "fixtures" / "result-v1.json"


def fixture():
    return results.read_result(FIXTURE)


def scaled(doc, factor):
    """The same sweep with every op count multiplied: rates scale by ``factor``."""
    out = copy.deepcopy(doc)
    points, out["points"] = out["points"], []
    for p in points:
        p["samples"] = [[c * factor for c in row] for row in p["samples"]]
        results.add_point(out, p)
    return out


def pyperf_cli(*args):
    return subprocess.run([sys.executable, "-m", "pyperf", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def test_pyperf_values_are_seconds_per_op(tmp_path):
    doc = fixture()
    out = export.to_pyperf(doc, tmp_path / "a.json")
    suite = pyperf.BenchmarkSuite.load(str(out))
    measured = [p for p in doc["points"] if p["samples"]]
    names = {export.benchmark_name(doc, p) for p in measured}
    assert set(suite.get_benchmark_names()) == names
    assert "fixture-locks/ttas/outside_work=0/process/w2" in names
    for p in measured:
        bench = suite.get_benchmark(export.benchmark_name(doc, p))
        assert bench.get_unit() == "second"
        expect = [t / sum(row) for row, t in zip(p["samples"], p["interval_times"])]
        assert list(bench.get_values()) == pytest.approx(expect, rel=1e-12)
        # raw value = value x loops: the measured interval, as pyperf means it
        raws = [v * run.get_total_loops() for run in bench.get_runs() for v in run.values]
        assert raws == pytest.approx(p["interval_times"], rel=1e-9)
        assert statistics.median(bench.get_values()) == pytest.approx(
            1 / p["summary"]["ops_per_s"]["median"], rel=1e-12)


def test_pyperf_cli_stats_and_compare_to(tmp_path):
    doc = fixture()
    a = export.to_pyperf(doc, tmp_path / "a.json")
    b = export.to_pyperf(scaled(doc, 2), tmp_path / "b.json")
    r = pyperf_cli("stats", a)
    assert r.returncode == 0, r.stderr
    assert "fixture-locks/ticket/outside_work=200/process/w2" in r.stdout
    r = pyperf_cli("compare_to", a, b)
    assert r.returncode == 0, r.stderr
    assert "faster" in r.stdout and "slower" not in r.stdout


def test_pyperf_refuses_overwrite_and_empty(tmp_path):
    doc = fixture()
    path = export.to_pyperf(doc, tmp_path / "a.json")
    before = path.read_bytes()
    with pytest.raises(ResultError, match="refusing to overwrite"):
        export.to_pyperf(scaled(doc, 3), path)
    assert path.read_bytes() == before
    empty = copy.deepcopy(doc)
    empty["points"] = [p for p in empty["points"] if not p["samples"]]
    with pytest.raises(ResultError, match="nothing to export"):
        export.to_pyperf(empty, tmp_path / "e.json")


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_csv_one_file_per_param_combination(tmp_path):
    doc = fixture()
    paths = export.to_csv(doc, tmp_path / "s.csv")
    assert sorted(p.name for p in paths) == ["s.outside_work=0.csv", "s.outside_work=200.csv"]
    header, rows = read_csv(tmp_path / "s.outside_work=200.csv")
    assert header == ["tasks", "ttas:process", "ticket:process", "linear"]
    want = {(p["workers"], p["variant"]): p["summary"]["ops_per_s"]["median"]
            for p in doc["points"] if p["params"]["outside_work"] == 200}
    assert [int(r[0]) for r in rows] == [1, 2]
    for r in rows:
        w = int(r[0])
        assert float(r[1]) == pytest.approx(want[(w, "ttas")], abs=0.51)
        assert float(r[2]) == pytest.approx(want[(w, "ticket")], abs=0.51)
        assert float(r[3]) == pytest.approx(w * want[(1, "ttas")], abs=1.01)
    # the failed thread point: its own column, an empty cell, linear still drawn
    header, rows = read_csv(tmp_path / "s.outside_work=0.csv")
    assert header[-2] == "ttas:thread" and rows[-1][0] == "8" and rows[-1][-2] == ""


def test_csv_single_file_and_repeats_use_median(tmp_path):
    doc = fixture()
    pts = [p for p in doc["points"] if p["params"]["outside_work"] == 0 and p["mode"] == "process"]
    doc["points"] = []
    for k, factor in enumerate((1, 2, 4)):        # three repeats: median is the x2 one
        for p in pts:
            q = copy.deepcopy(p)
            q["repeat"] = k
            q["samples"] = [[c * factor for c in row] for row in q["samples"]]
            results.add_point(doc, q)
    (path,) = export.to_csv(doc, tmp_path / "s.csv")
    assert path == tmp_path / "s.csv"
    header, rows = read_csv(path)
    assert header == ["tasks", "ttas", "ticket", "linear"]
    mid = {(p["workers"], p["variant"]): p["summary"]["ops_per_s"]["median"]
           for p in doc["points"] if p["repeat"] == 1}
    for r in rows:
        assert float(r[1]) == pytest.approx(mid[(int(r[0]), "ttas")], abs=0.51)
    with pytest.raises(ResultError, match="refusing to overwrite"):
        export.to_csv(doc, path)
