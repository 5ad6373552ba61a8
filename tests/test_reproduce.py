"""mmbench reproduce: claims checked against result files; FAIL exits 1, bad claims exit 2."""
import json

import pytest

from mmbench import claims as C
from mmbench.cli import main
from synth import make_doc


def _write(tmp_path, name, doc):
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(doc))
    return str(p)


def _pagealloc_docs(tmp_path, llfree_bulk=3e7, pcp_bulk=1e7, llfree_repeat=5e7,
                    pcp_repeat=1.2e8):
    a = make_doc("pagealloc", "pagealloc", workers=(2,), repeats=1, seed=1, counters=False,
                 series={"llfree": (llfree_bulk / 2, 0, 0), "pcp-autotune": (pcp_bulk / 2, 0, 0)},
                 params=[{"workload": "bulk"}, {"workload": "rand"}])
    b = make_doc("pagealloc", "pagealloc", workers=(2,), repeats=1, seed=2, counters=False,
                 series={"llfree": (llfree_repeat / 2, 0, 0),
                         "pcp-autotune": (pcp_repeat / 2, 0, 0)},
                 params=[{"workload": "repeat"}], created="2024-01-01T00:00:01+00:00")
    return [_write(tmp_path, "a", a), _write(tmp_path, "b", b)]


def test_a_ranking_as_published_passes(tmp_path, capsys):
    files = _pagealloc_docs(tmp_path)
    assert main(["reproduce", "llfree-atc23-ranking", "--from", *files]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS  llfree-atc23-ranking")


def test_an_inverted_ranking_fails_with_exit_1(tmp_path, capsys):
    files = _pagealloc_docs(tmp_path, llfree_bulk=1e7, pcp_bulk=3e7)   # bulk inverted
    assert main(["reproduce", "llfree-atc23-ranking", "--from", *files]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL  llfree-atc23-ranking")
    assert "FAIL bulk: LLFree first: not in the published order" in out
    assert "ok   repeat" in out


def test_a_claim_needing_more_cpus_says_so_and_never_passes(tmp_path, capsys):
    p = tmp_path / "big-box.toml"
    p.write_text((C.claims_dir() / "buddy-bulk-flattens.toml").read_text()
                 .replace('name = "buddy-bulk-flattens"', 'name = "big-box"')
                 .replace("needs_cpus = 16", "needs_cpus = 4096"))
    assert main(["reproduce", str(p)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("NEEDS 4096 CPUS  big-box") and "PASS" not in out


@pytest.mark.parametrize("body,needle", [
    ("this is = not toml [", "not valid TOML"),
    ('name = "bad"\ntitle = "t"\nsource = "s"\n[sweep]\nworkload = "pagealloc"\n', "missing key 'check'"),
    ('name = "bad"\ntitle = "t"\nsource = "s"\n[sweep]\nworkload = "pagealloc"\n'
     '[[check]]\nkind = "guess"\nmetric = "throughput"\n', "kind must be one of"),
    ('name = "other"\ntitle = "t"\nsource = "s"\n[sweep]\nworkload = "x"\n[[check]]\n'
     'kind = "value"\nmetric = "throughput"\nselect = {}\nexpect = 1\n', "must equal the file name"),
])
def test_an_unreadable_claim_exits_2_with_one_line(tmp_path, capsys, body, needle):
    p = tmp_path / "bad.toml"
    p.write_text(body)
    assert main(["reproduce", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_missing_claim_file_and_unknown_claim_exit_2(tmp_path, capsys):
    assert main(["reproduce", str(tmp_path / "nope.toml")]) == 2
    assert main(["reproduce", "no-such-claim"]) == 2
    assert "unknown claim" in capsys.readouterr().err


def test_shipped_claims_load():
    names = {c.name for c in C.find([])}
    assert {"llfree-atc23-ranking", "llfree-atc23-frag", "pcp-zone-lock-per-op",
            "memmap-share", "huang-batch-tradeoff", "buddy-bulk-flattens"} <= names


def test_flat_and_value_checks(tmp_path):
    flat = make_doc("pagealloc", "pagealloc", workers=(1, 3, 4, 8), repeats=1, seed=3,
                    series={"buddy": (2e7, 0.6, 0.0)}, counters=False, params={"workload": "bulk"})
    scaling = make_doc("pagealloc", "pagealloc", workers=(1, 3, 4, 8), repeats=1, seed=3,
                       series={"buddy": (2e7, 0.0, 0.0)}, counters=False,
                       params={"workload": "bulk"})
    claim = C.load(C.claims_dir() / "buddy-bulk-flattens.toml")
    # USL with sigma 0.6: 3 -> 8 workers gains (8/5.2) / (3/2.2) = +13 %: within 30 %
    assert C.evaluate(claim, [flat]).status == "PASS"
    assert C.evaluate(claim, [scaling]).status == "FAIL"     # linear: not flat
    assert C.evaluate(claim, [make_doc()]).status == "FAIL"  # no pagealloc points at all


def test_the_report_has_a_fidelity_section(tmp_path):
    from mmbench.report import write_report
    files = _pagealloc_docs(tmp_path)
    html = write_report(files, tmp_path / "rep", n_boot=20, formats=("png",)).read_text()
    assert "fidelity: published results reproduced" in html
    assert "llfree-atc23-ranking" in html and ">PASS<" in html
    assert "do not cover" in html and "memmap-share" in html


def test_workload_notes_reach_the_result_and_the_report(tmp_path):
    from mmbench.report import write_report
    from mmbench.workload import find, load
    wl = load(find("pagealloc"))
    assert any("free_high" in n for n in wl.notes) and wl.meta()["notes"] == wl.notes
    doc = make_doc("pagealloc", "pagealloc", workers=(1, 2), repeats=1, counters=False,
                   series={"llfree": (1e7, 0, 0)}, params={"workload": "mixed"})
    doc["workload"]["notes"] = ["a note about mixed & free_high"]
    html = write_report([_write(tmp_path, "n", doc)], tmp_path / "rep", n_boot=20,
                        formats=("png",)).read_text()
    assert "a note about mixed &amp; free_high" in html


def test_a_claim_over_two_sweeps_compares_their_speedups(tmp_path, capsys):
    kernel = make_doc("kernel-pagefault", "kernelpf", workers=(1, 2), repeats=1, seed=5,
                      counters=False, series={"4k": (5e5, 0.02, 0.0)})
    model = make_doc("pagealloc-vs-kernel", "pagealloc", workers=(1, 2), repeats=1, seed=6,
                     counters=False, series={"pcp-autotune": (8e6, 0.05, 0.0)},
                     created="2024-01-01T00:00:02+00:00")
    flat = make_doc("pagealloc-vs-kernel", "pagealloc", workers=(1, 2), repeats=1, seed=6,
                    counters=False, series={"pcp-autotune": (8e6, 1.0, 0.0)},
                    created="2024-01-01T00:00:03+00:00")
    k, m, f = (_write(tmp_path, n, d) for n, d in (("k", kernel), ("m", model), ("f", flat)))
    assert main(["reproduce", "pagefault-model-vs-kernel", "--from", k, m]) == 0
    assert "PASS" in capsys.readouterr().out
    # the model stops scaling (sigma 1: speedup 1.0 against the kernel's 1.96): FAIL
    assert main(["reproduce", "pagefault-model-vs-kernel", "--from", k, f]) == 1
    assert "FAIL speedup at 2 workers" in capsys.readouterr().out
    # one of the two results missing: not covered
    assert main(["reproduce", "pagefault-model-vs-kernel", "--from", k]) == 1
    assert "no points of workload pagealloc-vs-kernel" in capsys.readouterr().out
