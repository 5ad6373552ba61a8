"""Workload validation (one clear line, exit 2) and the CLI end to end."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmbench.cli import main
from mmbench.workload import WorkloadError, expand, load

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
name = "{name}"
description = "test"
model = "locks"
[grid]
variant = ["ttas", "private"]
cs_work = [0, 5]
workers = [1, 2]
[run]
duration = 0.2
"""


def write(tmp_path, body, name="wl"):
    p = tmp_path / f"{name}.toml"
    p.write_text(body.format(name=name) if "{name}" in body else body)
    return p


def test_good_file_expands_to_the_grid(tmp_path):
    wl = load(write(tmp_path, GOOD))
    pts = expand(wl, cpus=2)
    assert len(pts) == 2 * 2 * 2
    assert [(p.variant, p.params["cs_work"], p.workers) for p in pts[:4]] == [
        ("ttas", 0, 1), ("ttas", 0, 2), ("ttas", 5, 1), ("ttas", 5, 2)]
    assert pts[0].params["lock"] == "ttas"


@pytest.mark.parametrize("body,needle", [
    (GOOD.replace('description = "test"', 'description = "test"\nbogus = 1'), "unknown key 'bogus'"),
    (GOOD.replace("cs_work = [0, 5]", "cs_work = [0, -5]"), "grid.cs_work: cs_work must be >= 0"),
    (GOOD.replace("cs_work = [0, 5]", "cs_work = [0, \"x\"]"), "cs_work must be int"),
    (GOOD.replace("cs_work = [0, 5]", "nope = [1]"), "grid.nope is not a parameter of model locks"),
    (GOOD.replace('"ttas", "private"', '"ttas", "spinny"'), "'spinny' is not a variant"),
    (GOOD.replace("duration = 0.2", "duration = -1"), "run.duration must be in"),
    (GOOD.replace("workers = [1, 2]", "workers = [0]"), "workers entries must be integers"),
    (GOOD.replace('model = "locks"', 'model = "nope"'), "unknown model 'nope'"),
    ("name = \"wl\"\ndescription = 1\nmodel = \"locks\"", "description must be a string"),
    ("this is = not toml [", "not valid TOML"),
])
def test_bad_files_get_one_line_naming_file_and_key(tmp_path, body, needle):
    p = write(tmp_path, body)
    with pytest.raises(WorkloadError) as ei:
        load(p)
    msg = str(ei.value)
    assert needle in msg
    assert str(p) in msg
    assert "\n" not in msg


def test_name_must_match_file(tmp_path):
    p = tmp_path / "other.toml"
    p.write_text(GOOD.format(name="wl"))
    with pytest.raises(WorkloadError, match="must equal the file name"):
        load(p)


def test_shipped_workloads_are_valid():
    from mmbench.workload import all_workloads
    wls = all_workloads()
    assert "locks" in [w.name for w in wls]
    assert any(w.quick for w in wls)
    for wl in wls:
        assert expand(wl, cpus=2, quick=True)


def run_cli(*args, env=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "mmbench", *args], capture_output=True, text=True,
                          cwd=ROOT, env=e, timeout=300)


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    bad = write(tmp_path, GOOD.replace("cs_work = [0, 5]", "cs_work = [0, -5]"))
    for args in (["run", str(bad)], ["run", "no-such-workload"], ["run", "locks", "--workers", "x"],
                 ["show", str(tmp_path / "missing.json")], ["run", "locks", "--mode", "fiber"]):
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("mmbench: error:"), r.stderr


def test_cli_list_first_column_is_the_name():
    r = run_cli("list")
    assert r.returncode == 0
    names = [l.split()[0] for l in r.stdout.splitlines() if l.strip()]
    assert "locks" in names


def test_cli_run_show_export_round_trip(tmp_path):
    out = tmp_path / "r.json"
    r = run_cli("run", "locks", "--variant", "ttas,private", "--workers", "1,2", "--duration", "0.2",
                "--warmup", "0.05", "--repeat", "1", "--output", str(out), "--no-report")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == 2 and doc["complete"] is True
    assert {p["variant"] for p in doc["points"]} == {"ttas", "private"}
    assert all(p["invariants"]["ok"] for p in doc["points"])
    assert doc["limits"]["atomic_ns"] > 0
    # never silently overwritten
    again = run_cli("run", "locks", "--variant", "ttas", "--workers", "1", "--duration", "0.1",
                    "--warmup", "0", "--output", str(out), "--no-report")
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    shown = run_cli("show", str(out))
    assert shown.returncode == 0 and "ttas" in shown.stdout
    pp = tmp_path / "pp.json"
    ex = run_cli("export", str(out), "--format", "pyperf", "-o", str(pp))
    assert ex.returncode == 0, ex.stderr
    st = subprocess.run([sys.executable, "-m", "pyperf", "stats", str(pp)], capture_output=True, text=True)
    assert st.returncode == 0, st.stderr


def test_main_without_command_prints_help(capsys):
    assert main([]) == 2


def test_set_overrides_the_grid_and_is_validated(tmp_path):
    from mmbench.workload import parse_set
    wl = load(write(tmp_path, GOOD))
    ov = parse_set(["cs_work=3,4,5"], "locks")
    assert ov == {"cs_work": [3, 4, 5]}
    pts = expand(wl, cpus=2, overrides=ov)
    assert sorted({p.params["cs_work"] for p in pts}) == [3, 4, 5]
    for bad, needle in ((["cs_work=-1"], "must be >= 0"), (["cs_work=x"], "is not an integer"),
                        (["nope=1"], "not a parameter"), (["cs_work"], "expected KEY=VALUE")):
        with pytest.raises(WorkloadError, match=needle):
            parse_set(bad, "locks")
