"""Kill-and-resume for every trainer: SIGKILL mid-checkpoint-write, mid-log-line and at a random moment, then
resume; the final weights and the log (metrics.jsonl, AT's selection rounds) must equal an uninterrupted run's.

The runs are real processes (a forkserver that has imported torch and effdata once, so each start is cheap),
killed with SIGKILL; tests/resume_worker.py holds the small trainers."""
import json
import multiprocessing as mp
import random
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
import resume_worker  # noqa: E402

KINDS = ["ddpm", "dro", "at", "mpt", "red"]


@pytest.fixture(scope="module")
def ctx():
    c = mp.get_context("forkserver")
    c.set_forkserver_preload(["torch", "resume_worker", "effdata.diffusion", "effdata.reweighting", "effdata.at",
                              "effdata.mpt", "effdata.red"])
    return c


def run(ctx, *args, kill_when=None, timeout=300):
    "Run resume_worker.work(*args) in a child process; `kill_when(run_dir)` -> True sends it SIGKILL. Returns the exit code."
    p = ctx.Process(target=resume_worker.work, args=args)
    p.start()
    t0 = time.time()
    while p.is_alive() and time.time() - t0 < timeout:
        if kill_when is not None and kill_when(Path(args[1])):
            p.kill(); break
        time.sleep(0.005)
    p.join(timeout)
    assert p.exitcode is not None, f"{args} did not finish in {timeout} s"
    return p.exitcode


def records(run_dir: Path) -> list[dict]:
    "The log without wall-clock fields (the only thing allowed to differ)."
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(l).items() if "seconds" not in k} for l in lines]


def lines_at_least(n):
    def when(d):
        f = d / "metrics.jsonl"
        return f.exists() and f.read_text().count("\n") >= n
    return when


@pytest.mark.parametrize("kind", KINDS)
def test_kill_and_resume(kind, ctx, tmp_path):
    rng = random.Random(f"{kind}-{time.time()}")   # random kill points, printed on failure
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert run(ctx, kind, str(ref)) == 0
    want = records(ref)
    n = len(want)
    plan = {"log_line": rng.randrange(2, n), "random_after_lines": rng.randrange(1, n - 1), "sleep": rng.uniform(0, 0.05)}
    # 1. killed half-way through writing its second checkpoint (weights written, state.pt half written)
    assert run(ctx, kind, str(cut), False, 2) == -signal.SIGKILL, plan
    assert list((cut / "checkpoints").glob(".step-*.tmp")), "the kill should leave a half-written checkpoint folder"
    # 2. resumed, killed half-way through writing a log line
    code = run(ctx, kind, str(cut), True, None, plan["log_line"])
    assert code in (0, -signal.SIGKILL), plan
    # 3. resumed, killed at a random moment
    def at_random(d, _n=plan["random_after_lines"], _s=plan["sleep"]):
        if lines_at_least(_n)(d): time.sleep(_s); return True
        return False
    run(ctx, kind, str(cut), True, kill_when=at_random)
    # 4. the newest checkpoint is damaged on disk: resume falls back to the one before it
    cks = sorted((cut / "checkpoints").glob("step-*"))
    if len(cks) == 2 and not (cut / "final.safetensors").exists():
        f = cks[-1] / "model.safetensors"; f.write_bytes(f.read_bytes()[:100])
    # 5. resumed to the end
    assert run(ctx, kind, str(cut), True) == 0, plan
    a, b = load_file(str(ref / "final.safetensors")), load_file(str(cut / "final.safetensors"))
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), (k, plan)
    assert records(cut) == want, plan
    assert not list((cut / "checkpoints").glob(".step-*.tmp")) and not list(cut.glob(".*.tmp")), plan
    if kind == "at":   # one selection record per round, and the same selections
        rounds = [r["selection_round"] for r in records(cut) if "selection_round" in r]
        assert rounds == sorted(set(rounds)) == [0, 1, 2], rounds
        for f in sorted((ref / "selections").glob("*.npz")):
            import numpy as np
            x, y = np.load(f), np.load(cut / "selections" / f.name)
            assert all(np.array_equal(x[k], y[k]) for k in ("indices", "weights")), f.name
