"""Crash-safe sweeps: the journal, stop signals, kill -9, resume, and partial files everywhere.

The end-to-end tests run the real ``mmbench`` command in a subprocess on tiny
points of the lock family and wait for its progress lines (never a fixed sleep)
before signalling it.
"""
import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mmbench import results as R
from mmbench.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "result-v1.json"

# 6 points of ~0.25 s each (1 worker: runs the same on any box).
SMALL = ["run", "locks", "--variant", "private,shared-add,ttas", "--workers", "1",
         "--set", "cs_work=0", "--set", "outside_work=0,100",
         "--duration", "0.2", "--warmup", "0.05", "--interval", "0.05", "--repeat", "1",
         "--no-report"]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "mmbench", *args], capture_output=True,
                          text=True, cwd=ROOT, env=_env(), timeout=timeout)


class Running:
    """``mmbench`` in the background, its stderr read line by line."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "mmbench", *args], cwd=ROOT,
                                     env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_points(self, n, timeout=180):
        """Block until ``n`` progress lines of completed points were printed."""
        end = time.monotonic() + timeout
        while sum("Mops/s" in l for l in self.seen) < n:
            line = self.lines.get(timeout=max(0.1, end - time.monotonic()))
            assert line is not None, "mmbench ended early:\n" + "".join(self.seen)
            self.seen.append(line)

    def finish(self, timeout=60):
        self.proc.wait(timeout=timeout)
        while True:
            try:
                line = self.lines.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return self.proc.returncode, "".join(self.seen)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _children(pid):
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _alive(pid):
    try:
        st = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return st.rsplit(")", 1)[1].split()[0] != "Z"


def _segments(pid):
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"mmbench-{pid}-")]


def _keys(doc):
    return [(p["variant"], json.dumps(p["params"], sort_keys=True), p["workers"], p["repeat"])
            for p in doc["points"]]


def _planned_keys(doc):
    return [(q["variant"], json.dumps(q["params"], sort_keys=True), q["workers"], q["repeat"])
            for q in doc["sweep"]["planned"]]


# --------------------------------------------------------------------------- end to end

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_keeps_completed_points_and_resume_completes_them(tmp_path, sig):
    out = tmp_path / "r.json"
    run = Running(*SMALL, "--output", str(out))
    try:
        run.wait_for_points(2)
        run.proc.send_signal(sig)
        rc, err = run.finish()
    finally:
        run.kill()
    assert rc == 128 + sig, err
    assert f"interrupted by {signal.Signals(sig).name}" in err
    assert f"--resume {out}" in err
    assert not _segments(run.proc.pid)
    partial = R.read_result(out)            # validates against the schema
    assert partial["complete"] is False and R.is_partial(partial)
    assert 2 <= len(partial["points"]) < len(partial["sweep"]["planned"]) == 6
    assert all(p["samples"] and p["summary"] for p in partial["points"])
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()

    r = cli("run", "--resume", str(out), "--no-report")
    assert r.returncode == 0, r.stderr
    full = R.read_result(out)
    assert full["complete"] is True
    # As an uninterrupted run writes it: every planned point once, in plan order...
    assert _keys(full) == _planned_keys(full)
    # ...the points measured before the interruption kept as they were...
    kept = {json.dumps(p, sort_keys=True) for p in partial["points"]}
    assert kept <= {json.dumps(p, sort_keys=True) for p in full["points"]}
    # ...and one resume record saying how many were done.
    assert [x["points_before"] for x in full["resumes"]] == [len(partial["points"])]
    assert full["command"] == partial["command"] and full["created"] == partial["created"]

    before = out.read_bytes()
    again = cli("run", "--resume", str(out), "--no-report")
    assert again.returncode == 0, again.stderr
    assert "is complete" in again.stdout and "point(s) to run" not in again.stderr
    assert out.read_bytes() == before


def _umask():
    return R._umask()


def test_kill_9_of_the_parent_keeps_earlier_points_and_leaves_nothing(tmp_path):
    out = tmp_path / "k.json"
    run = Running(*SMALL, "--output", str(out))
    pid = run.proc.pid
    try:
        run.wait_for_points(1)
        # The next point is running once a worker exists beside the resource tracker.
        end = time.monotonic() + 60
        while len(_children(pid)) < 2 and time.monotonic() < end:
            time.sleep(0.005)
        kids = _children(pid)
        assert len(kids) >= 2, "no worker of the next point appeared"
        os.kill(pid, signal.SIGKILL)
        run.proc.wait(timeout=30)
        # Every worker notices its parent is gone (PR_SET_PDEATHSIG) and ends.
        end = time.monotonic() + 20
        while any(_alive(k) for k in kids) and time.monotonic() < end:
            time.sleep(0.05)
        assert not [k for k in kids if _alive(k)], "a worker outlived its parent"
    finally:
        run.kill()
    assert not _segments(pid)
    doc = R.read_result(out)
    assert doc["complete"] is False and len(doc["points"]) >= 1
    assert all(p["samples"] for p in doc["points"])


def _partial_copy(tmp_path, name="p.json", drop=1):
    """A real 2-point result with its last ``drop`` points removed (what an interrupt leaves)."""
    full = tmp_path / "full.json"
    if not full.exists():
        r = cli("run", "locks", "--variant", "private", "--workers", "1", "--set", "cs_work=0",
                "--set", "outside_work=0,100", "--duration", "0.1", "--warmup", "0.02",
                "--interval", "0.05", "--repeat", "1", "--no-report", "--output", str(full))
        assert r.returncode == 0, r.stderr
    doc = json.loads(full.read_text())
    doc["points"] = doc["points"][:len(doc["points"]) - drop]
    doc["complete"] = False
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path, doc


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["sweep"].__setitem__("model_source_hash", "0" * 16), "model source changed"),
    (lambda d: d["workload"].__setitem__("version", 99), "workload version 99"),
    (lambda d: d["machine"].__setitem__("kernel", "1.0-other"), "machine kernel"),
])
def test_resume_refuses_a_changed_model_workload_or_machine_unless_forced(tmp_path, edit, needle):
    path, doc = _partial_copy(tmp_path)
    edit(doc)
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    r = cli("run", "--resume", str(path), "--no-report")
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0] and "--force" in lines[0], r.stderr
    assert path.read_bytes() == before
    forced = cli("run", "--resume", str(path), "--force", "--no-report")
    assert forced.returncode == 0, forced.stderr
    done = R.read_result(path)
    assert done["complete"] and len(done["points"]) == 2
    assert any(needle in f for f in done["resumes"][0]["forced"])


# --------------------------------------------------------------------------- units

def _doc_with_plan(points=2):
    base = R.read_result(FIXTURE)
    planned = [{"variant": p["variant"], "params": p["params"], "given": {},
                "workers": p["workers"], "repeat": p["repeat"]} for p in base["points"][:points]]
    sweep = {"settings": {"duration": 0.5, "warmup": 0.5, "interval": 0.1, "repeat": 1,
                          "seed": 1, "watchdog": 10.0},
             "mode": "process", "quick": False, "model_source_hash": "abc", "planned": planned}
    doc = R.new_document(base["workload"], base["machine"], base["limits"], ["mmbench"],
                         sweep=sweep)
    return doc, base["points"][:points]


def _raw(p):
    q = dict(p)
    q.pop("summary")
    return q


def test_journal_holds_each_point_as_soon_as_it_completes(tmp_path):
    doc, pts = _doc_with_plan(3)
    path = tmp_path / "j.json"
    j = R.Journal(doc, path)
    j.start()
    on_disk = R.read_result(path)
    assert on_disk["points"] == [] and on_disk["complete"] is False
    assert R.missing_points(on_disk) == [0, 1, 2]
    for i in (2, 0):            # any order: the file says which are done
        j.add(_raw(pts[i]))
        on_disk = R.read_result(path)
        assert R.is_partial(on_disk)
    assert R.missing_points(on_disk) == [1]
    assert "PARTIAL result: 2 of 3 planned points" in R.partial_note(on_disk, path)
    j.add(_raw(pts[1]))
    j.finish()
    final = R.read_result(path)
    assert final["complete"] and R.partial_note(final) is None
    assert [(p["variant"], p["workers"]) for p in final["points"]] == \
        [(p["variant"], p["workers"]) for p in pts]      # plan order restored
    with pytest.raises(R.ResultError, match="refusing to overwrite"):
        R.Journal(dict(doc), path).start()               # never over an existing file


def test_missing_points_counts_duplicates():
    doc, pts = _doc_with_plan(1)
    doc["sweep"]["planned"] = doc["sweep"]["planned"] * 3
    doc["points"] = [dict(pts[0])]
    assert R.missing_points(doc) == [1, 2]


def test_an_interrupted_fresh_journal_with_no_point_is_removed(tmp_path):
    doc, _ = _doc_with_plan(1)
    path = tmp_path / "e.json"
    j = R.Journal(doc, path)
    j.start()
    assert path.exists()
    assert j.discard_if_empty() and not path.exists()


def test_result_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = R.write_atomic(tmp_path / "x.json", b"{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_every_reader_says_a_file_is_partial(tmp_path, capsys):
    doc, pts = _doc_with_plan(3)
    path = tmp_path / "part.json"
    j = R.Journal(doc, path)
    j.start()
    j.add(_raw(pts[0]))
    j.add(_raw(pts[1]))
    assert main(["show", str(path)]) == 0
    assert "PARTIAL result: 2 of 3 planned points" in capsys.readouterr().out
    for argv in (["export", str(path), "--format", "pyperf", "-o", str(tmp_path / "pp.json")],
                 ["export", str(path), "--format", "csv", "-o", str(tmp_path / "c.csv")],
                 ["compare", str(path), str(path)],
                 ["plot", str(path), "-o", str(tmp_path / "plots")],
                 ["report", str(path), "-o", str(tmp_path / "rep")]):
        rc = main(argv)
        assert rc in (0, 1), argv
        err = capsys.readouterr().err
        assert "PARTIAL result" in err, argv
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "partial" in html.lower()


def test_list_verbose_prints_each_workload_once_and_booleans_as_booleans(capsys):
    assert main(["list", "-v"]) == 0
    out = capsys.readouterr().out
    from mmbench.workload import all_workloads
    names = [w.name for w in all_workloads()]
    heads = [l.split(":")[0].split(" [")[0] for l in out.splitlines() if l and not l[0].isspace()]
    assert sorted(heads) == sorted(names) and len(heads) == len(set(heads))
    assert heads == sorted(heads)
    bool_lines = [l for l in out.splitlines() if "memmap_on_memory" in l or "prefragment" in l]
    assert bool_lines
    for l in bool_lines:
        assert "boolean" in l and "in [" not in l
