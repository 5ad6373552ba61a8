"""Every flag of every command, given bad values: exit 2, one line, nothing started or written.

Run in-process with the machine probes and the harness replaced by tripwires:
a bad value must be refused before anything is measured, compiled or started.
A few cases also go through a real subprocess (what a user sees).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmbench.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "result-v1.json"


@pytest.fixture
def files(tmp_path):
    """Named bad and good inputs inside tmp_path."""
    f = {
        "good": tmp_path / "good.json",
        "corrupt": tmp_path / "corrupt.json",
        "empty": tmp_path / "empty.json",
        "notresult": tmp_path / "other.json",
        "v99": tmp_path / "v99.json",
        "dir": tmp_path / "adir",
        "missing": tmp_path / "missing.json",
        "unreadable": tmp_path / "unreadable.json",
        "existing": tmp_path / "existing.out",
        "badtoml": tmp_path / "badwl.toml",
        "outdir": tmp_path / "out",
    }
    f["good"].write_bytes(FIXTURE.read_bytes())
    f["corrupt"].write_text('{"format": "mmbench-result", "schema_version": 1, "points": [')
    f["empty"].write_text("")
    f["notresult"].write_text(json.dumps({"hello": 1}))
    doc = json.loads(FIXTURE.read_text())
    doc["schema_version"] = 99
    f["v99"].write_text(json.dumps(doc))
    f["dir"].mkdir()
    f["unreadable"].write_bytes(FIXTURE.read_bytes())
    os.chmod(f["unreadable"], 0)
    f["existing"].write_text("x")
    f["badtoml"].write_text("this is = not toml [")
    return {k: str(v) for k, v in f.items()}


RUN = ["run", "locks", "--no-report"]
CASES = [
    # run: settings
    *[(RUN + ["--duration", v], "--duration") for v in ("abc", "nan", "inf", "-1", "0", "1e9", "")],
    *[(RUN + ["--warmup", v], "--warmup") for v in ("abc", "nan", "-inf", "-0.5", "1e9")],
    *[(RUN + ["--interval", v], "--interval") for v in ("abc", "nan", "0", "-1", "1e9")],
    (RUN + ["--duration", "0.1", "--interval", "0.1"], "must be shorter than --duration"),
    (RUN + ["--duration", "3600", "--interval", "0.001"], "sampling intervals"),
    *[(RUN + ["--repeat", v], "--repeat") for v in ("0", "-1", "x", "1.5", "1e9", "100000", "nan")],
    *[(RUN + ["--seed", v], "--seed") for v in ("-1", "x", "nan", str(2**64))],
    *[(RUN + ["--workers", v], "--workers") for v in ("", "0", "-1", "x", "nan", "1,,2", "5000", "inf")],
    *[(RUN + ["--variant", v], "--variant") for v in ("nope", "", "ttas,", "ttas,nope")],
    *[(RUN + ["--set", v], "--set") for v in ("cs_work=-1", "cs_work=x", "nope=1", "cs_work",
                                              "cs_work=", "=1", "cs_work=1e99")],
    (["run", "cma", "--no-report", "--set", "occupancy=nan"], "finite"),
    (["run", "cma", "--no-report", "--set", "occupancy=inf"], "occupancy"),
    (["run", "cma", "--no-report", "--set", "prefragment=maybe"], "prefragment"),
    (RUN + ["--mode", "fiber"], "--mode"),
    (RUN + ["--output", "{missing}/x.json"], "does not exist"),
    (RUN + ["--output", "{existing}"], "refusing to overwrite"),
    (RUN + ["--output", "{dir}"], "is a directory"),
    (RUN + ["--output", "{existing}/x.json"], "not a folder"),
    (RUN + ["--output", ""], "empty path"),
    (["run", "locks", "cma", "--no-report", "--output", "{outdir}/x.json"], "--output names one file"),
    (RUN + ["--results-dir", "{existing}"], "--results-dir"),
    (RUN + ["--report-dir", "{existing}"], "--report-dir"),
    (["run", "no-such-workload", "--no-report"], "unknown workload"),
    (["run", "{badtoml}", "--no-report"], "not valid TOML"),
    (["run", "--bogus-flag"], "unrecognized arguments"),
    # run --resume
    (["run", "--resume", "{missing}"], "cannot read"),
    (["run", "--resume", "{dir}"], "cannot read"),
    (["run", "--resume", "{corrupt}"], "not valid JSON"),
    (["run", "--resume", "{empty}"], "not valid JSON"),
    (["run", "--resume", "{notresult}"], "not an mmbench result"),
    (["run", "--resume", "{v99}"], "newer than this mmbench"),
    (["run", "--resume", "{unreadable}"], "cannot read"),
    (["run", "locks", "--resume", "{good}"], "drop NAME"),
    (["run", "--resume", "{good}", "--workers", "2"], "drop --workers"),
    (["run", "locks", "--force"], "--force only applies with --resume"),
    # show
    (["show"], "required"),
    *[(["show", "{%s}" % k], None) for k in ("missing", "dir", "corrupt", "empty", "notresult",
                                              "v99", "unreadable")],
    (["show", "{good}", "{missing}"], "cannot read"),
    # compare
    *[(["compare", "{good}", "{good}", "--threshold", v], "--threshold")
      for v in ("nan", "inf", "-1", "x", "1e9")],
    *[(["compare", "{good}", "{good}", "--alpha", v], "--alpha") for v in ("0", "1", "nan", "x", "-0.1")],
    (["compare", "{good}", "{missing}"], "cannot read"),
    (["compare", "{corrupt}", "{good}"], "not valid JSON"),
    (["compare", "{good}", "{dir}"], "cannot read"),
    (["compare", "{good}"], "required"),
    (["compare", "{good}", "{good}", "--format", "xml"], "--format"),
    (["compare", "{good}", "{good}", "--test", "ttest"], "--test"),
    # export
    (["export", "{good}", "-o", "{missing}/x.json"], "does not exist"),
    (["export", "{good}", "-o", "{dir}"], "is a directory"),
    (["export", "{good}", "-o", "{existing}"], "refusing to overwrite"),
    (["export", "{good}", "-o", "{dir}", "--force"], "is a directory"),
    (["export", "{good}", "--format", "xml", "-o", "{outdir}.json"], "--format"),
    (["export", "{good}"], "required"),
    *[(["export", "{%s}" % k, "-o", "{outdir}.json"], None)
      for k in ("missing", "dir", "corrupt", "v99", "unreadable")],
    # plot / report
    *[([cmd, "{good}", "-o", "{existing}"], "not a folder") for cmd in ("plot", "report")],
    *[([cmd, "{good}", "-o", "{existing}/sub"], "not a folder") for cmd in ("plot", "report")],
    *[([cmd, "{%s}" % k, "-o", "{outdir}"], None)
      for cmd in ("plot", "report") for k in ("missing", "dir", "corrupt", "empty", "v99")],
    *[([cmd, "-o", "{outdir}"], "required") for cmd in ("plot", "report")],
    # history
    (["history", "--results-dir", "{missing}", "-o", "{outdir}"], "does not exist"),
    (["history", "--results-dir", "{existing}", "-o", "{outdir}"], "not a folder"),
    (["history", "--results-dir", "{dir}", "-o", "{existing}"], "not a folder"),
    (["history", "--results-dir", "{dir}"], "required"),
]


@pytest.fixture
def tripwires(monkeypatch):
    """Anything that measures, compiles or starts workers fails the test."""
    def trip(*a, **k):
        raise AssertionError("work started before the input was checked")
    import mmbench.harness
    import mmbench.probes
    monkeypatch.setattr(mmbench.probes, "measure_limits", trip)
    monkeypatch.setattr(mmbench.harness, "run_point", trip)
    monkeypatch.setattr(mmbench.harness, "_start_workers", trip)


def _ids():
    return [" ".join(a)[:60] for a, _ in CASES]


@pytest.mark.parametrize("argv,needle", CASES, ids=_ids())
def test_bad_input_exits_2_with_one_line(argv, needle, files, tmp_path, capsys, tripwires):
    if os.geteuid() == 0 and any("{unreadable}" in a for a in argv):
        pytest.skip("root reads a mode-000 file")
    argv = [a.format(**files) for a in argv]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    try:
        rc = main(argv)
    except SystemExit as e:   # argparse's own errors
        rc = e.code
    cap = capsys.readouterr()
    assert rc == 2, (argv, cap.err)
    lines = [l for l in cap.err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("mmbench: error:"), cap.err
    assert "Traceback" not in cap.err
    if needle:
        assert needle in lines[0], lines[0]
    assert cap.out == ""
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "something was written"


@pytest.mark.parametrize("args", [
    ["run", "locks", "--duration", "nan"],
    ["run", "locks", "--repeat", "0"],
    ["run", "locks", "--duration", "-1"],
    ["run", "locks", "--output", "/nonexistent-dir/x.json"],
    ["show", "/nonexistent-dir/x.json"],
])
def test_bad_input_in_a_real_process(args):
    r = subprocess.run([sys.executable, "-m", "mmbench", *args], capture_output=True, text=True,
                       cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("mmbench: error:"), r.stderr
