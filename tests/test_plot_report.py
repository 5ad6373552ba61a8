"""Plots, the HTML report and history, drawn from stored fixture results (nothing is run)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mmbench.scaling import AnalysisError

from synth import FIXTURES, make_doc

FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
N_BOOT = 50  # fewer bootstrap draws: the drawing is under test here, not the statistics


def _assert_image(p: Path) -> None:
    assert p.exists() and p.stat().st_size > 1000, p
    head = p.read_bytes()[:200]
    if p.suffix == ".png":
        assert head.startswith(b"\x89PNG\r\n\x1a\n"), p
    else:
        assert b"<svg" in p.read_bytes()[:2000], p


def test_fixtures_are_current():
    """The stored fixtures are what tests/synth.py generates (regenerate after editing it)."""
    from synth import fixture_docs

    docs = fixture_docs()
    assert sorted(f"{n}.json" for n in docs) == [p.name for p in FIXTURE_FILES]
    for name, doc in docs.items():
        assert json.loads((FIXTURES / f"{name}.json").read_text()) == json.loads(json.dumps(doc))


@pytest.fixture(scope="module")
def plots(tmp_path_factory):
    from mmbench.plot import plot_files

    out = tmp_path_factory.mktemp("plots")
    return out, plot_files(FIXTURE_FILES, out, n_boot=N_BOOT)


def test_plot_files_writes_every_view(plots):
    out, files = plots
    stems = {p.stem for p in files}
    for stem in ["locks-throughput", "locks-scaling", "locks-latency", "locks-locks-per-op",
                 "memmap-throughput", "memmap-memmap",          # memmap family view
                 "pagealloc-frag-frag",                         # pagealloc frag view
                 "widget-extra"]:                               # unknown model: generic
        assert stem in stems, (stem, sorted(stems))
    # memmap's extra keys are all drawn by its family view: no generic leftovers
    assert "memmap-extra" not in stems
    # no latency histograms or lock counters were stored for memmap
    assert "memmap-latency" not in stems and "memmap-locks-per-op" not in stems
    for p in files:
        _assert_image(p)
    assert {p.suffix for p in files} == {".png", ".svg"}
    assert all(p.with_suffix(".svg") in files for p in files if p.suffix == ".png")


def test_plot_svg_has_units_and_legend(plots):
    out, _ = plots
    svg = (out / "locks-throughput.svg").read_text()
    assert "ops/s" in svg and "workers" in svg and "linear ideal" in svg
    assert "oversubscribed" in svg  # 32 workers on 16 CPUs
    assert "bytes" in (out / "memmap-memmap.svg").read_text()
    assert "free 2 MiB blocks" in (out / "pagealloc-frag-frag.svg").read_text()
    assert "widget_ns, ns" in (out / "widget-extra.svg").read_text()


def test_plotting_runs_no_benchmark(tmp_path):
    code = ("import sys; from mmbench.plot import plot_files; "
            f"plot_files([{str(FIXTURES / 'memmap.json')!r}], {str(tmp_path)!r}, n_boot=10); "
            "print(sorted(m for m in sys.modules if m.startswith(('numba', 'mmbench.harness', "
            "'mmbench.models', 'mmbench.shm'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_single_worker_count_has_no_scaling_plot(tmp_path):
    from mmbench.plot import plot_files

    files = plot_files([make_doc(workers=(4,), seed=1)], tmp_path, n_boot=10)
    stems = {p.stem for p in files}
    assert "locks-throughput" in stems and "locks-scaling" not in stems


def test_plot_bad_input_is_an_error(tmp_path):
    from mmbench.plot import plot_files

    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(AnalysisError):
        plot_files([bad], tmp_path / "out")


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.src, self.href = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.src.append(a["src"])
        if tag == "a" and "href" in a:
            self.href.append(a["href"])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from mmbench.report import write_report

    out = tmp_path_factory.mktemp("report")
    files = [FIXTURES / "locks-base.json", FIXTURES / "memmap.json"]
    return write_report(files, out, n_boot=N_BOOT)


def test_report_references_its_plots(report):
    assert report.name == "index.html"
    text = report.read_text()
    p = _Imgs()
    p.feed(text)
    assert len(p.src) >= 5
    for src in p.src:
        assert not src.startswith(("/", "http")), src  # relative
        _assert_image(report.parent / src)
    svgs = [h for h in p.href if h.endswith(".svg")]
    assert svgs and all((report.parent / h).exists() for h in svgs)
    for must in ("synth-box", "Synthetic CPU", "pingpong_ns", "memset_gbps", "6.8.0-synth",
                 '<td class="l">ticket</td>', "σ (contention)", "Jain fairness",
                 "the USL fit needs at least three worker counts"):  # memmap has 2
        assert must in text, must


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not installed (CI installs it: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    # a copy of the page beside it, with a script that records whether every image decoded
    probe = ("<script>window.addEventListener('load', () => {"
             "const imgs = [...document.images];"
             "const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0));"
             "document.body.setAttribute('data-imgs', imgs.length);"
             "document.body.setAttribute('data-bad', bad.map(i => i.src).join(' ') || 'none');"
             "});</script>")
    check = report.parent / "check.html"
    check.write_text(report.read_text().replace("</body>", probe + "</body>"))
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={tmp_path}", "--virtual-time-budget=10000",
           "--dump-dom", check.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    m = re.search(r'data-imgs="(\d+)"\s+data-bad="([^"]*)"', out.stdout)
    assert m, out.stderr[-2000:]
    assert int(m.group(1)) >= 5
    assert m.group(2) == "none"


def _history_dir(tmp_path, n=6, slow_from=3, machine=None):
    d = tmp_path / "results" / "synth-box"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sd = {"ticket": 0.8} if slow_from is not None and i >= slow_from else {}
        doc = make_doc(seed=200 + i, workers=(1, 2, 4), commit=f"{i:07x}",
                       created=f"2024-02-{i + 1:02d}T00:00:00+00:00", slowdown=sd,
                       machine=machine)
        (d / f"locks-{i}.json").write_text(json.dumps(doc))
    return tmp_path / "results"


def test_history_flags_the_step(tmp_path):
    from mmbench.history import find_steps, history, load_runs

    root = _history_dir(tmp_path)
    files = history(root, outdir=tmp_path / "h")
    for p in files:
        if p.suffix in (".png", ".svg"):
            _assert_image(p)
    assert {p.name for p in files} >= {"history-locks.png", "history-locks.svg"}
    runs = load_runs(root)["locks"]
    assert [r.commit for r in runs] == [f"{i:07x}" for i in range(6)]
    _, steps = find_steps(runs)
    assert {(s.key.variant, s.after.commit, s.kind) for s in steps} == {("ticket", "0000003",
                                                                          "regression")}
    assert len(steps) == 3  # one per worker count
    txt = (tmp_path / "h" / "history-locks-steps.txt").read_text()
    assert "regression" in txt and "0000002 -> 0000003" in txt


def test_history_without_change_flags_nothing(tmp_path):
    from mmbench.history import find_steps, load_runs

    _, steps = find_steps(load_runs(_history_dir(tmp_path, n=5, slow_from=None))["locks"])
    assert steps == []


def test_history_errors(tmp_path):
    from mmbench.history import history, load_runs
    from synth import MACHINE

    with pytest.raises(AnalysisError):
        history(tmp_path / "nowhere", outdir=tmp_path / "h")
    root = _history_dir(tmp_path, n=2)
    with pytest.raises(AnalysisError, match="no results"):
        load_runs(root, workload="nonexistent")
    other = dict(MACHINE, name="other-box")
    d = make_doc(seed=1, workers=(1, 2), machine=other)
    (root / "synth-box" / "other.json").write_text(json.dumps(d))
    with pytest.raises(AnalysisError, match="machines"):
        load_runs(root)
    assert len(load_runs(root, machine="other-box")["locks"]) == 1


def test_many_series_are_drawn_as_panels(tmp_path):
    """A sweep over several parameters gets one panel per setting, not one 40-line legend."""
    import json as _json
    from mmbench import plot as P
    from mmbench.scaling import load_all
    docs = load_all([str(p) for p in FIXTURE_FILES])
    for doc, _ in docs:
        g = P.Group(doc["workload"]["name"], [(doc, "x")])
        facets = P._facets(g)
        # every series lands in exactly one facet
        assert sum(len(v) for v in facets.values()) == len(g.series)
        for title, sks in facets.items():
            for sk in sks:
                params = _json.loads(sk.params)
                for part in title.split(" "):
                    if "=" in part:
                        k, v = part.split("=", 1)
                        assert str(params[k]) == v


def test_cma_view_plots_failure_rate_against_occupancy(tmp_path):
    from synth import make_doc
    from mmbench import plot as P

    def cma_extra(variant, workers, rng, params):
        fail = 1.0 if variant == "buddy-highorder" else params["occupancy"] / 10
        return {"failure_rate_run": fail, "attempts_run": 100, "pages_migrated_per_alloc": 3.0,
                "by_occupancy_run": [{"occupancy": [0.0, 1.0], "attempts": 100,
                                      "failures": int(100 * fail), "failure_rate": fail,
                                      "mean_cycles": 1e5}]}

    doc = make_doc(workload="cma", model="cma", workers=(2,), repeats=1,
                   series={"cma": (1e6, 0, 0), "buddy-highorder": (1e6, 0, 0)},
                   params=[{"occupancy": o, "pinned_share": 0.0} for o in (0.3, 0.6)],
                   extra=cma_extra, counters=False)
    g = P.Group("cma", [(doc, "x")])
    files, keys = P._cma_view(g, tmp_path)
    assert {f.suffix for f in files} >= {".png"} and all(f.stat().st_size > 0 for f in files)
    assert "failure_rate_run" in keys
    # a workload without these extras draws nothing
    assert P._cma_view(P.Group("locks", [(make_doc(), "y")]), tmp_path) == ([], set())
