"""The harness: sampling, pinning, modes, and cleanup on every exit path."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import multiprocessing
import numpy as np
import pytest

from mmbench.harness import HarnessError, RunConfig, cpu_map, run_point
from mmbench.models import get_model
from mmbench.shm import leaked_segments

from models_for_tests import Misbehaving

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mine(pid=None):
    pid = os.getpid() if pid is None else pid
    return [s for s in leaked_segments() if s.startswith(f"mmbench-{pid}-")]


def quick(workers, mode="process", **kw):
    return RunConfig(workers=workers, mode=mode, duration=0.3, warmup=0.1, interval=0.05, **kw)


@pytest.mark.parametrize("variant", ["private", "shared-add", "ttas", "ticket", "mcs"])
def test_lock_family_two_workers_invariants_hold(variant):
    m = get_model("locks")
    p = m.resolve(variant, {"cs_work": 20})
    rec = run_point(m, variant, p, quick(2))
    assert rec["invariants"]["ok"], rec["invariants"]
    samples = np.array(rec["samples"])
    assert samples.shape == (6, 2)
    assert samples.sum() > 0
    assert rec["workers"] == 2 and len(rec["cpu_map"]) == 2
    if variant in ("ttas", "ticket", "mcs"):
        # One acquisition per op (exact over the whole run: checked by the
        # invariants; over the window, up to the batches in flight at its edges).
        acq = sum(rec["counters"]["lock_acquisitions"])
        ops = sum(rec["counters"]["ops"])
        assert abs(acq - ops) <= 2 * sum(rec["extra"]["final_batch"])
        assert acq > 0
    assert not _mine()


def test_invariant_check_detects_a_lost_update():
    m = get_model("locks")
    p = m.resolve("ttas", {})
    arrays = {"shared": np.zeros(8, np.int64), "priv": np.zeros(32, np.int64),
              "counters": np.zeros((2, m.counter_columns()), np.int64)}
    arrays["counters"][:, m.counter_index("ops")] = [10, 5]
    arrays["counters"][:, 0] = [10, 5]
    arrays["shared"][0] = 15
    assert m.check(arrays, p, 2) == []
    arrays["shared"][0] = 14
    assert "1 updates lost" in m.check(arrays, p, 2)[0]


def test_thread_mode_runs_the_same_kernels():
    m = get_model("locks")
    p = m.resolve("mcs", {})
    rec = run_point(m, "mcs", p, quick(2, mode="thread"))
    assert rec["invariants"]["ok"]
    assert rec["mode"] == "thread"
    assert np.array(rec["samples"]).sum() > 0


def test_cpu_map_round_robin_and_oversubscription():
    cpus = sorted(os.sched_getaffinity(0))
    cm = cpu_map(len(cpus) + 1, cpus)
    assert cm[:len(cpus)] == cpus and cm[-1] == cpus[0]
    m = get_model("locks")
    rec = run_point(m, "private", m.resolve("private", {}), quick(len(cpus) + 1))
    assert rec["oversubscribed"] is True
    assert rec["invariants"]["ok"]


def test_counters_cover_only_the_measured_window():
    m = get_model("locks")
    rec = run_point(m, "ttas", m.resolve("ttas", {}),
                    RunConfig(workers=1, duration=0.2, warmup=0.3, interval=0.05))
    window_ops = int(np.array(rec["samples"]).sum())
    counted = rec["counters"]["ops"][0]
    # Ops are counted per batch; the window's counter delta and the samples can
    # differ by at most the batches in flight at the two edges.
    assert abs(counted - window_ops) <= 2 * max(rec["extra"]["final_batch"]) + 1


def test_worker_exception_is_reported_and_nothing_leaks():
    with pytest.raises(HarnessError, match=r"worker 1 .*raised RuntimeError: boom in worker"):
        run_point(Misbehaving(), "raise", {"how": "raise"}, quick(2))
    assert not _mine()


def test_hung_worker_is_caught_by_the_watchdog():
    t = time.monotonic()
    with pytest.raises(HarnessError, match=r"worker 0 .*no progress"):
        run_point(Misbehaving(), "hang", {"how": "hang"},
                  RunConfig(workers=2, duration=5, warmup=0.1, interval=0.05, watchdog=1.0))
    assert time.monotonic() - t < 10
    assert not _mine()
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("mmbench-worker")]


def test_not_runnable_is_a_result_not_a_crash():
    rec = run_point(Misbehaving(), "refuse", {"how": "refuse"}, quick(1))
    assert rec["error"].startswith("not runnable: this machine is too small")
    assert not _mine()


def test_kill_9_of_a_worker_holding_a_lock_ends_the_run_cleanly():
    m = get_model("locks")
    # Long critical sections: the lock is held nearly all the time.
    p = m.resolve("ttas", {"cs_work": 20000})
    victim = {}

    def killer():
        time.sleep(0.8)
        kids = [c for c in multiprocessing.active_children() if c.name == "mmbench-worker-0"]
        if kids:
            victim["pid"] = kids[0].pid
            os.kill(kids[0].pid, signal.SIGKILL)

    th = threading.Thread(target=killer)
    th.start()
    t = time.monotonic()
    with pytest.raises(HarnessError, match=r"worker 0 \(cpu \d+\) killed by signal 9"):
        run_point(m, "ttas", p, RunConfig(workers=2, duration=10, warmup=0.2, interval=0.05,
                                          watchdog=3.0))
    th.join()
    assert victim
    assert time.monotonic() - t < 8
    assert not _mine()
    assert not [c for c in multiprocessing.active_children() if c.name.startswith("mmbench-worker")]


SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from mmbench.harness import RunConfig, run_point
    from mmbench.models import get_model
    from models_for_tests import Misbehaving
    what = sys.argv[1]
    if what == "setup":
        print("ready", flush=True)
        run_point(Misbehaving(), "slow-setup", {{"how": "slow-setup"}}, RunConfig(workers=2))
    else:
        m = get_model("locks")
        def prog(i, n):
            if i == 2:
                print("ready", flush=True)
        run_point(m, "ttas", m.resolve("ttas", {{}}),
                  RunConfig(workers=2, duration=60, warmup=0.1, interval=0.05), on_progress=prog)
""")


@pytest.mark.parametrize("where", ["setup", "window"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_signal_to_the_parent_leaves_no_segment(tmp_path, where, sig):
    script = tmp_path / "victim.py"
    script.write_text(SCRIPT.format(tests=os.path.join(ROOT, "tests")))
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, str(script), where], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read()
        time.sleep(0.3)
        # The name is unlinked as soon as the arena is mapped (workers are forked):
        # not even a kill -9 during a long setup or compile can leave it behind.
        assert not _mine(proc.pid), "the arena's name should be gone once it is mapped"
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert not _mine(proc.pid)
    time.sleep(0.2)
    # No worker of the victim survives it (PR_SET_PDEATHSIG).
    out = subprocess.run(["pgrep", "-f", "mmbench-worker"], capture_output=True, text=True).stdout
    assert str(proc.pid) not in out


def test_a_failed_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    """A point whose worker raises is kept as a failed point; the others still run."""
    from mmbench.harness import failed_point
    from mmbench.metadata import machine_metadata
    from mmbench.results import add_point, new_document, write_result, read_result
    doc = new_document({"name": "x", "description": "", "model": "misbehaving", "version": 1,
                        "file": None, "source_hash": ""}, machine_metadata(),
                       {"atomic_ns": None, "pingpong_ns": None, "memset_gbps": None}, ["mmbench"])
    cfg = quick(2)
    try:
        run_point(Misbehaving(), "raise", {"how": "raise"}, cfg)
    except HarnessError as e:
        add_point(doc, failed_point("raise", {"how": "raise"}, cfg, str(e)))
    add_point(doc, run_point(Misbehaving(), "ok", {"how": "ok"}, cfg))
    back = read_result(write_result(doc, tmp_path / "r.json"))
    bad, good = back["points"]
    assert bad["error"].startswith("failed: worker 1") and not bad["invariants"]["ok"]
    assert good["invariants"]["ok"] and sum(map(sum, good["samples"])) > 0


def test_oversubscribed_fifo_lock_stops_promptly():
    """4 workers on fewer CPUs convoy on a ticket lock; stop must still come within the watchdog."""
    m = get_model("locks")
    p = m.resolve("ticket", {"cs_work": 50})
    rec = run_point(m, "ticket", p, RunConfig(workers=4, duration=0.5, warmup=0.5, interval=0.1,
                                              watchdog=5.0))
    assert rec["invariants"]["ok"]
