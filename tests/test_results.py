"""Result documents: schema, round trips, refusal to overwrite, atomicity, old versions."""
import errno
import hashlib
import json
import os
import random
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from mmbench import metadata, results, stats
from mmbench.results import ResultError

FIXTURE = Path(__file__).parent / "fixtures" / "result-v1.json"
# The v1 fixture is frozen: it was generated once by results.write_result from
# seeded synthetic samples.  Never regenerate it; add a new fixture per version.
FIXTURE_SHA256 = "1d96b25bf99697befbd9ec2adad5719791883eebad0617fa991b69ecfff63529"


def make_point(rng, variant="ttas", workers=2, intervals=4, **over):
    times = [0.1 + rng.uniform(-0.003, 0.003) for _ in range(intervals)]
    samples = [[rng.randrange(10**5, 10**6) for _ in range(workers)] for _ in range(intervals)]
    ops = [sum(r[w] for r in samples) for w in range(workers)]
    point = {"variant": variant, "params": {"cs_work": 0, "outside_work": rng.choice([0, 100])},
             "mode": "process", "workers": workers, "allowed_cpus": 4,
             "oversubscribed": workers > 4, "cpu_map": list(range(workers)), "repeat": 0,
             "warmup_s": 0.1, "interval_s": 0.1, "interval_times": times, "samples": samples,
             "counters": {"lock_acquisitions": ops, "lock_contended": [o // 3 for o in ops]},
             "invariants": {"ok": True, "errors": []}, "compile_s": 0.01, "pingpong_ns": None}
    point.update(over)
    return point


def make_doc(seed=1, npoints=3):
    rng = random.Random(seed)
    machine = metadata.machine_metadata()
    workload = {"name": "locks", "description": "lock scalability", "model": "locks",
                "version": 1, "file": None, "source_hash": "abc"}
    doc = results.new_document(workload, machine, {"atomic_ns": 5.0}, ["mmbench", "run", "locks"])
    for i in range(npoints):
        results.add_point(doc, make_point(rng, workers=1 + i))
    return doc


def assert_one_line_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg and msg
    for n in needles:
        assert n in msg, msg


# --- documents -----------------------------------------------------------------------

def test_round_trip(tmp_path):
    doc = make_doc()
    path = results.write_result(doc, tmp_path / "r.json")
    assert results.read_result(path) == json.loads(json.dumps(doc))
    assert results.read_result(path) == doc


def test_written_file_validates_against_shipped_schema(tmp_path):
    path = results.write_result(make_doc(), tmp_path / "r.json")
    schema = results.load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(path.read_text()), schema,
                        cls=jsonschema.Draft202012Validator)


def test_add_point_summarises_and_converts_numpy():
    doc = make_doc(npoints=0)
    samples = np.arange(12, dtype=np.int64).reshape(4, 3) * 1000
    p = results.add_point(doc, make_point(random.Random(3), workers=3, samples=samples,
                                          cpu_map=np.arange(3), interval_times=[0.1] * 4,
                                          counters={"x": np.ones(3, dtype=np.int64)}))
    assert doc["points"][-1] is p
    assert type(p["samples"][0][0]) is int and type(p["cpu_map"][0]) is int
    assert p["summary"] == stats.summarize(samples.tolist(), [0.1] * 4)
    results.validate(doc)


def test_add_point_rejects_bad_point_at_once():
    doc = make_doc(npoints=0)
    with pytest.raises(ResultError) as e:
        results.add_point(doc, make_point(random.Random(1), mode="fiber"))
    assert_one_line_error(e, "points[0].mode")
    with pytest.raises(ResultError) as e:
        results.add_point(doc, make_point(random.Random(1), interval_times=[0.1]))
    assert_one_line_error(e, "points[0]", "summarise")
    assert doc["points"] == []


def test_point_without_samples_has_null_summary():
    doc = make_doc(npoints=0)
    p = results.add_point(doc, make_point(random.Random(1), samples=[], interval_times=[],
                                          error="worker 1 stuck"))
    assert p["summary"] is None
    results.validate(doc)
    assert "ERROR" in results.format_show(doc)


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d["points"][1]["samples"][2].append(5), "points[1].samples[2]"),
    (lambda d: d["points"][0]["cpu_map"].append(5), "points[0].cpu_map"),
    (lambda d: d["points"][2]["counters"]["lock_acquisitions"].pop(), "points[2].counters"),
    (lambda d: d["points"][0]["extra"].update(bad=float("nan")), "points[0].extra.bad"),
    (lambda d: d["points"][1]["samples"][0].__setitem__(0, -1), "points[1].samples[0][0]"),
    (lambda d: d["workload"].pop("model"), "workload"),
    (lambda d: d.update(surprise=1), "surprise"),
])
def test_validate_names_first_failing_path(mutate, where):
    doc = make_doc()
    doc["points"][0]["extra"] = {}
    results.validate(doc)
    mutate(doc)
    with pytest.raises(ResultError) as e:
        results.validate(doc)
    assert_one_line_error(e, where)


# --- files -----------------------------------------------------------------------------

def test_never_overwrites(tmp_path):
    doc = make_doc()
    path = results.write_result(doc, tmp_path / "r.json")
    before = path.read_bytes()
    other = make_doc(seed=2)
    with pytest.raises(ResultError) as e:
        results.write_result(other, path)
    assert_one_line_error(e, "exists; refusing to overwrite")
    assert path.read_bytes() == before
    results.write_result(other, path, overwrite=True)
    assert results.read_result(path) == other
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_link_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    def broken_link(src, dst):
        raise OSError(errno.EIO, "simulated I/O error")
    monkeypatch.setattr(os, "link", broken_link)
    target = tmp_path / "sub" / "r.json"
    with pytest.raises(ResultError) as e:
        results.write_result(make_doc(), target)
    assert_one_line_error(e, "cannot write", "simulated I/O error")
    assert list(target.parent.iterdir()) == []


def test_write_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    def broken_fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ResultError):
        results.write_result(make_doc(), tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_filesystem_without_hard_links(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(os, "link", no_links)
    doc = make_doc()
    path = results.write_result(doc, tmp_path / "r.json")
    assert results.read_result(path) == doc
    with pytest.raises(ResultError, match="refusing to overwrite"):
        results.write_result(doc, path)
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_default_path(tmp_path):
    doc = make_doc()
    doc["created"] = "2024-03-05T06:07:08Z"
    doc["machine"]["name"] = "Box/One"
    doc["machine"]["git"] = {"commit": "f" * 40, "short": "fffffff", "dirty": True}
    p = results.default_path(doc, tmp_path)
    assert p == tmp_path / "box-one" / "20240305T060708Z-fffffff-locks.json"
    doc["machine"]["git"] = None
    assert results.default_path(doc, tmp_path).name == "20240305T060708Z-nogit-locks.json"
    doc["machine"]["name"] = metadata.machine_metadata()["name"]
    written = results.write_result(doc, results_dir=tmp_path)
    assert written.parent.parent == tmp_path and written.exists()


@pytest.mark.parametrize("content, needle", [
    (b"\x00\xff\xfe garbage", "not valid JSON"),
    (None, "not valid JSON"),                                  # truncated
    (b'{"format": "pyperf", "version": "1.0"}', "not an mmbench result"),
    (b"[1, 2, 3]", "not an mmbench result"),
    (b'{"format": "mmbench-result", "schema_version": 99}', "newer than this mmbench supports"),
    (b'{"format": "mmbench-result", "schema_version": 0}', "unknown result schema version"),
    (b'{"format": "mmbench-result", "schema_version": 1, "points": []}', "required property"),
])
def test_bad_files_give_one_line_errors(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    if content is None:
        good = results.dumps(make_doc())
        content = good[: len(good) // 2]
    path.write_bytes(content)
    with pytest.raises(ResultError) as e:
        results.read_result(path)
    assert_one_line_error(e, needle, str(path))


def test_missing_file(tmp_path):
    with pytest.raises(ResultError) as e:
        results.read_result(tmp_path / "nope.json")
    assert_one_line_error(e, "cannot read", "nope.json")


# --- the frozen v1 fixture ------------------------------------------------------------

def test_fixture_is_frozen():
    assert hashlib.sha256(FIXTURE.read_bytes()).hexdigest() == FIXTURE_SHA256


def test_fixture_readable_and_summaries_recomputable():
    doc = results.read_result(FIXTURE)
    assert doc["schema_version"] == results.SCHEMA_VERSION == 2
    # upgraded from v1: written at the end of a sweep, so complete, with no plan
    assert doc["complete"] is True and doc["sweep"] is None and doc["resumes"] == []
    assert len(doc["points"]) >= 2
    for p in doc["points"]:
        if not p["samples"]:
            assert p["summary"] is None
            continue
        again = stats.summarize(p["samples"], p["interval_times"])
        assert again["total_ops"] == p["summary"]["total_ops"]
        assert again["jain"] == pytest.approx(p["summary"]["jain"], rel=1e-12)
        assert again["per_worker_ops_per_s"] == pytest.approx(p["summary"]["per_worker_ops_per_s"])
        for k, v in p["summary"]["ops_per_s"].items():
            assert again["ops_per_s"][k] == pytest.approx(v, rel=1e-12), k
    hist = [p["latency"] for p in doc["points"] if "latency" in p]
    assert hist and stats.hist_summary(hist[0]["acquire"]["counts"])["max"] == 2 ** 11


def test_show_and_summary_table():
    doc = results.read_result(FIXTURE)
    text = results.format_show(doc)
    assert "fixture-locks" in text and "Synthetic CPU" in text
    assert "outside_work" in text            # varies: a column
    assert "cs_work=0" in text                # fixed: listed once
    assert "8*" in text                       # oversubscribed point is marked
    assert "ERROR" in text and "stuck" in text and "nr_free mismatch" in text
    table = results.summary_table(doc["points"])
    lines = table.splitlines()
    assert len(lines) == 2 + len(doc["points"])
    p = doc["points"][0]
    assert f"{p['summary']['ops_per_s']['median'] / 1e6:.3g}" in lines[2]
    assert "acq/op" in lines[0]


# --- machine metadata -----------------------------------------------------------------

def test_machine_metadata_is_json_and_complete():
    m = metadata.machine_metadata()
    assert json.loads(json.dumps(m)) == m
    for k in ("name", "hostname", "cpu_model", "nproc", "allowed_cpus", "topology", "kernel",
              "os", "memory_total_bytes", "python", "numpy", "numba", "llvmlite", "mmbench",
              "source_hash", "git", "aslr", "cpufreq_governor", "thp", "virtualized"):
        assert k in m, k
    assert set(metadata.CHECKED_KEYS) <= set(m)
    assert m["allowed_cpus"] == sorted(os.sched_getaffinity(0))
    assert metadata.sanitize_name(m["name"]) == m["name"]
    assert metadata.checked_differences(m, dict(m)) == []
    assert metadata.checked_differences(m, dict(m, nproc=-1)) == [f"nproc: {m['nproc']!r} != -1"]


def test_git_info_outside_a_checkout(tmp_path):
    (tmp_path / "pkg").mkdir()
    assert metadata.git_info(tmp_path / "pkg" / "mod.py") is None


@pytest.mark.parametrize("raw, safe", [("Host.Example.COM", "host.example.com"), ("../x", "x"),
                                       ("a b/c", "a-b-c"), ("...", "unknown")])
def test_sanitize_name(raw, safe):
    assert metadata.sanitize_name(raw) == safe


def test_latency_table_reports_percentiles_of_each_histogram():
    from mmbench.stats import hist_summary
    doc = results.read_result(FIXTURE)
    pts = [p for p in doc["points"] if p.get("latency")]
    assert pts
    text = results.latency_table(doc["points"], tsc_per_ns=2.0)
    lines = text.splitlines()
    nhist = sum(1 for p in pts for h in p["latency"].values() if sum(h["counts"]))
    assert len(lines) == 3 + nhist
    op, h = sorted(pts[0]["latency"].items())[0]
    s = hist_summary(h["counts"], h.get("bucket_log2_base", 0))
    assert f"{s['p50']:.0f}" in lines[3] and f"({s['p50'] / 2.0:.3g} ns)" in lines[3]
    assert results.latency_table([p for p in doc["points"] if not p.get("latency")]) == ""
