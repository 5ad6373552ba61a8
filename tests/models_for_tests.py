"""Small models that misbehave on purpose, to test the harness's failure paths."""
import time

import numpy as np

from mmbench.model import ArraySpec, Model, ModelNotRunnable, Param


class Misbehaving(Model):
    name = "misbehaving"
    variants = {"raise": {"how": "raise"}, "hang": {"how": "hang"}, "slow-setup": {"how": "slow-setup"},
                "refuse": {"how": "refuse"}, "ok": {"how": "ok"}}
    params = {"how": Param(str, "ok", choices=("raise", "hang", "slow-setup", "refuse", "ok"))}
    counter_names = ("ops",)

    def layout(self, p, nworkers):
        return [ArraySpec("x", (8,))]

    def setup(self, arrays, p, nworkers, seed):
        if p["how"] == "slow-setup":
            time.sleep(60)
        if p["how"] == "refuse":
            raise ModelNotRunnable("this machine is too small")

    def step(self, ctx, n):
        arrays, p, w, nw = ctx
        if p["how"] == "raise" and w == 1:
            raise RuntimeError("boom in worker")
        if p["how"] == "hang" and w == 0:
            time.sleep(3600)
        arrays["counters"][w, self.counter_index("ops")] += 1
        return 1
