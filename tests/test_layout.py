"""The package layout (issue #14): a move of code is not a change of behaviour, and the
imports point one way."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "fixtures" / "golden"
sys.path.insert(0, str(GOLDEN))
import gen_families  # noqa: E402  (the recorder: the same seeded runs, replayed here)

RECORDED = json.loads((GOLDEN / "families.json").read_text())


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_a_seeded_run_is_what_it_was_before_the_move(case):
    """Each (family, variant) run recorded before the layout change gives the same ops per
    step, the same shared arrays, the same counters and no invariant errors."""
    name, variant = case.split("/")
    got = gen_families.run_case(name, variant)
    want = RECORDED[case]
    assert got["errors"] == [] == want["errors"]
    assert got["done"] == want["done"]
    assert got["counters"] == want["counters"]
    changed = sorted(k for k in want["arrays"] if got["arrays"].get(k) != want["arrays"][k])
    assert changed == [], f"{case}: arrays differ after the move: {changed}"
    assert sorted(got["arrays"]) == sorted(want["arrays"])
