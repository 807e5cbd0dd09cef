"""Small training runs of effdata's trainers on one or several processes, for tests/test_scaleout.py and
bench/scaleout.py: the same code either way.

    python tests/scaleout_worker.py OUT [--cases ddpm,dro,at,glister,features,resume] [--steps N]
    torchrun --standalone --nproc_per_node 2 tests/scaleout_worker.py OUT ...

Every process writes OUT/<case>.rank<R>.pt: its losses, its final weights and what the case chose (selection,
class weights, features), plus the global samples trained, wall and CPU seconds. `compare(one, many)` checks a
several-process result against the one-process one."""
import argparse
import os
import sys
import time
from pathlib import Path

import torch

CASES = ("ddpm", "dro", "at", "glister", "features", "resume")


def _digits():
    from effdata.data import load_dataset
    return load_dataset("digits")


def _unet_config():
    from effdata.diffusion import get_config
    return get_config("digits_small", block_out_channels=(8, 16), attention_resolutions=(), norm_num_groups=8,
                      layers_per_block=1, warmup_steps=2)


def _weights(tr) -> dict:
    return {f"{n}.{k}": v.detach().cpu().clone() for n, m in tr.modules().items() for k, v in m.state_dict().items()}


def build(case: str, steps: int, run=None, resume=False):
    "The trainer of `case` (tiny models on the 8x8 digits; `steps` sets the run's length)."
    from effdata.core import seed_everything
    digits = _digits()
    common = dict(progress=False, seed=0, run=run, resume=resume)
    # SGD for the U-Nets: Adam divides by the gradient's size, so in directions where it is ~0 (a conv bias before
    # GroupNorm) float rounding of the summed gradient moves a weight by up to lr per step, whatever the processes
    dm = dict(optimizer="sgd", lr=0.01, momentum=0.9)
    if case in ("ddpm", "resume"):
        from effdata.diffusion import DDPMTrainer
        return DDPMTrainer(digits.subset(range(128 * max(1, steps // 4))), _unet_config(), steps=steps, batch_size=32,
                           log_every=1, **dm, **common)
    if case == "dro":
        from effdata.diffusion import make_unet
        from effdata.reweighting import DROTrainer
        cfg = _unet_config(); seed_everything(1); ref = make_unet(cfg)
        return DROTrainer(digits.subset(range(128 * max(1, steps // 4))), ref, cfg, steps=steps, batch_size=32, **dm, **common)
    if case in ("at", "glister"):
        from effdata.at import ATTrainer
        from effdata.models import MLP   # no BatchNorm: each process would normalise over its own rows
        n = 240 * max(1, steps // 8)
        kw = dict(subset="gradmatch") if case == "at" else dict(subset="glister", val_fraction=0.2)
        return ATTrainer(MLP(hidden=(32,)), digits.subset(range(n)), objective="pgd", eps=0.1, alpha=0.05, steps=2,
                         fraction=0.5, every=1, warm=1, epochs=2, batch_size=40, lr=0.05, augment=False,
                         select_batch_size=64, log_every=1, **kw, **common)
    raise SystemExit(f"unknown case {case!r}: choose from {', '.join(CASES)}")


def run_case(case: str, steps: int, out: Path, processes) -> dict:
    """Run `case` on the current processes; return what it produced (and write it to OUT/<case>.rank<R>.pt).
    `samples`, `wall` and `cpu` (all processes) time the training after its first step (or the extraction)."""
    from effdata.features import encoder, extract
    res = {"case": case, "world_size": processes.world_size, "threads": torch.get_num_threads()}
    processes.wait()
    if case == "features":
        digits = _digits(); enc = encoder("pixels", dataset=digits, dim=32)
        t0, c0 = time.perf_counter(), time.process_time()
        res["features"] = extract(enc, digits, batch_size=100, progress=False, processes=processes)
        res["samples"] = len(digits)
    elif case == "resume":   # stop half-way, build a new trainer on the run folder, finish
        run = out / "resume-run"
        t0, c0 = time.perf_counter(), time.process_time()
        build(case, steps, run=run).fit(max_steps=steps // 2)
        tr = build(case, steps, run=run, resume=True)
        res["resumed_at"] = tr.step
        tr.fit()
        res.update(losses=torch.tensor(tr.history), weights=_weights(tr), samples=steps * tr.loader.bs)
        if processes.is_main: res["log_steps"] = [r["step"] for r in tr.run.metrics() if "loss" in r]
    else:
        tr = build(case, steps)
        tr.fit(max_steps=1)                 # warm-up step, not timed
        processes.wait()
        t0, c0 = time.perf_counter(), time.process_time()
        tr.fit()
        res.update(losses=torch.tensor(tr.history), weights=_weights(tr))
        res["samples"] = (sum(tr.epoch_steps) - 1) * tr.loader.bs     # global samples (a short last batch counts whole)
        if case == "dro": res["alpha"] = torch.stack(tr.traj); res["class_weights"] = torch.as_tensor(tr.result().weights)
        if case in ("at", "glister"):
            res["selection"] = torch.as_tensor(tr.current.indices); res["selection_weights"] = torch.as_tensor(tr.current.weights)
    res["wall"] = time.perf_counter() - t0
    res["cpu"] = processes.sum(torch.tensor([time.process_time() - c0], dtype=torch.float64)).item()   # all processes
    processes.wait()
    torch.save(res, out / f"{case}.rank{processes.rank}.pt")
    return res


def compare(one: dict, many: dict, tol: float = 1e-4) -> list[str]:
    "What differs between a one-process result and a several-process one ([] if they agree within `tol`)."
    bad = []
    for k in ("selection", "features"):
        if k in one and not torch.equal(one[k], many[k]): bad.append(f"{k} differs")
    for k in ("losses", "alpha", "class_weights", "selection_weights"):
        if k in one and not torch.allclose(one[k].double(), many[k].double(), rtol=tol, atol=tol):
            bad.append(f"{k}: max difference {(one[k].double() - many[k].double()).abs().max():.3g}")
    if "weights" in one:
        diff = max(((one["weights"][k].double() - many["weights"][k].double()).abs().max().item()
                    for k in one["weights"] if one["weights"][k].is_floating_point()), default=0.0)
        if diff > tol: bad.append(f"weights: max difference {diff:.3g}")
    return bad


def check_all(one: dict, many: dict) -> dict[str, list[str]]:
    """Per case, what differs between one-process results `one[case]` and several-process ones `many[case]` (a list
    of every rank's result): the checks of tests/test_scaleout.py. All lists empty: the same results."""
    out = {}
    for case, ranks in many.items():
        bad = []
        for r, res in enumerate(ranks):
            ref = one[case]
            if case == "resume":   # resumed at half-way: the rest equals one uninterrupted process (the ddpm case)
                ref = {**one["ddpm"], "losses": one["ddpm"]["losses"][-len(res["losses"]):]}
                if res["resumed_at"] != len(one["ddpm"]["losses"]) - len(res["losses"]): bad.append(f"rank {r} resumed at {res['resumed_at']}")
            bad += [f"rank {r}: {b}" for b in compare(ref, res)]
        if "weights" in ranks[0] and not all(torch.equal(ranks[0]["weights"][k], q["weights"][k]) for q in ranks for k in ranks[0]["weights"]):
            bad.append("the processes hold different weights")
        if case == "resume" and ranks[0].get("log_steps") != list(range(1, len(one["ddpm"]["losses"]) + 1)):
            bad.append(f"log steps {ranks[0].get('log_steps')}")
        out[case] = bad
    return out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("out"); p.add_argument("--cases", default=",".join(CASES)); p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from effdata.train import Processes
    P = Processes.current(cpu=True)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    for case in a.cases.split(","): run_case(case, a.steps, out, P)
    return 0


if __name__ == "__main__":
    sys.exit(main())
