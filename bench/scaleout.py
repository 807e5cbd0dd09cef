"""Throughput of the shared Trainer on 1 and 2 processes here (CPU, gloo), started with torchrun, for the
DDPM and adversarial-training (GRAD-MATCH pruning) trainers, and whether 2 processes give the one-process results.

    python bench/scaleout.py [--steps 32]

Writes bench/results/scaleout.json and .md. Each configuration is a separate launch of tests/scaleout_worker.py
(the runs of tests/test_scaleout.py, longer): 1 process x 1 thread, 1 process x 2 threads, 2 processes x 1 thread.
`same_results_as_single_process` is computed here by running the equivalence checks of tests/test_scaleout.py
(`scaleout_worker.check_all`) on a fresh 2-process run against a fresh 1-process run."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE)); sys.path.insert(0, str(HERE.parent / "tests"))
from _common import machine, write  # noqa: E402
import scaleout_worker as W  # noqa: E402

TRAINERS = {"ddpm": "DDPMTrainer (U-Net 8-16, digits 8x8, batch 32)",
            "at": "ATTrainer (MLP, PGD-2, GRAD-MATCH 50 %, batch 40)"}


def launch(out: Path, nproc: int, cases, steps: int, threads: int = 1) -> dict:
    """Run the worker with `nproc` CPU processes started by torchrun (`accelerate launch --cpu` starts one process
    only); accelerate joins them into a gloo group inside. Every rank's results per case."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", W.__file__,
           str(out), "--cases", ",".join(cases), "--steps", str(steps), "--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0: raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return {c: [torch.load(out / f"{c}.rank{r}.pt", weights_only=False) for r in range(nproc)] for c in cases}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=32, help="training steps per timed run (the warm-up step excluded)")
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="scaleout-"))
    # 1. equivalence: the test suite's checks, on fresh runs
    two = launch(tmp / "eq2", 2, W.CASES, 4)
    one = {c: r[0] for c, r in launch(tmp / "eq1", 1, W.CASES, 4).items()}
    checks = W.check_all(one, two)
    same = all(not v for v in checks.values())
    print("equivalence:", "same results" if same else checks)
    # 2. throughput
    rows = []
    for nproc, threads in ((1, 1), (1, 2), (2, 1)):
        res = launch(tmp / f"t{nproc}x{threads}", nproc, list(TRAINERS), a.steps, threads)
        for case in TRAINERS:
            r = res[case][0]
            rows.append(dict(trainer=case, processes=nproc, threads_per_process=threads, samples=r["samples"],
                             wall_s=round(r["wall"], 2), cpu_s=round(r["cpu"], 2),
                             samples_per_second=round(r["samples"] / r["wall"], 1),
                             samples_per_cpu_second=round(r["samples"] / r["cpu"], 1)))
            print(rows[-1])
    sps = {t: {f"{r['processes']}x{r['threads_per_process']}": r["samples_per_second"] for r in rows if r["trainer"] == t}
           for t in TRAINERS}
    result = {"machine": machine(1), "launcher": "torchrun --standalone (gloo, joined by accelerate)", "steps": a.steps,
              "trainers": TRAINERS, "processes": [1, 2], "samples_per_second": sps, "rows": rows,
              "same_results_as_single_process": same, "equivalence_checks": checks,
              "load_average": os.getloadavg()}
    by = {(r["trainer"], r["processes"], r["threads_per_process"]): r for r in rows}
    speed = "; ".join(f"{t}: 2 processes give {by[t, 2, 1]['samples_per_second'] / by[t, 1, 1]['samples_per_second']:.2f}x "
                      f"the samples/s of 1 process x 1 thread, 1 process x 2 threads {by[t, 1, 2]['samples_per_second'] / by[t, 1, 1]['samples_per_second']:.2f}x"
                      for t in TRAINERS)
    notes = (f"{speed}. Samples per second of the timed steps (after one warm-up step), per configuration `processes x threads`; "
             f"CPU seconds summed over processes. {os.cpu_count()} cores, shared with other work (load average "
             f"{os.getloadavg()[0]:.1f} at the end), so wall-clock numbers move from run to run. These models are tiny: "
             f"per step, the gradient all-reduce and the waiting for the slower process weigh as much as the compute, so 2 processes "
             f"on 2 busy cores show what the machinery costs, not what 2 GPUs give; two OpenMP threads in one process fare "
             f"far worse on a loaded machine (they spin-wait for each other). same_results_as_single_process: "
             f"{same} (the checks of tests/test_scaleout.py on a fresh 2-process run: losses and weights within 1e-4, "
             f"the same GRAD-MATCH/GLISTER selections, DRO class weights, features and resume).")
    print(write("scaleout", result, "Scale-out: 1 vs 2 processes on the CPU", rows, notes))


if __name__ == "__main__":
    main()
