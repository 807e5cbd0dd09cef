"""Two processes on the CPU (gloo, started by torchrun) against one: a few DDPM steps, a few DRO steps, a pruned
adversarial-training round (GRAD-MATCH and GLISTER), sharded feature extraction and the resume of a 2-process run.
Same seed, same global batch: losses and weights within 1e-4 (float summation order), the same selection and
class weights, the same features in the same order. tests/scaleout_worker.py holds the runs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import scaleout_worker as W  # noqa: E402

from effdata.train import Processes  # noqa: E402


def launch(out: Path, nproc: int = 2, cases=W.CASES, steps: int = 4, timeout: int = 300):
    "Run the worker on `nproc` processes with torchrun; return the results of every rank, per case."
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           W.__file__, str(out), "--cases", ",".join(cases), "--steps", str(steps)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return {c: [torch.load(out/f"{c}.rank{r}.pt", weights_only=False) for r in range(nproc)] for c in cases}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "Two processes first (torchrun), then the same cases in this process: never more than 2 processes at once."
    root = tmp_path_factory.mktemp("scaleout")
    two = launch(root/"two")
    torch.set_num_threads(1)
    (root/"one").mkdir()
    one = {c: W.run_case(c, 4, root/"one", Processes()) for c in W.CASES}
    return one, two


@pytest.mark.parametrize("case", ["ddpm", "dro", "at", "glister"])
def test_same_as_one_process(runs, case):
    one, two = runs
    assert two[case][0]["world_size"] == 2
    for rank in (0, 1):
        assert W.compare(one[case], two[case][rank]) == [], f"{case}, rank {rank}"
    # every process holds the same weights, bit for bit (they take the same step from the same summed gradient)
    w0, w1 = two[case][0]["weights"], two[case][1]["weights"]
    assert all(torch.equal(w0[k], w1[k]) for k in w0)


def test_dro_class_weights(runs):
    one, two = runs
    torch.testing.assert_close(two["dro"][0]["alpha"], one["dro"]["alpha"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(two["dro"][0]["class_weights"], one["dro"]["class_weights"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["at", "glister"])
def test_same_selection(runs, case):
    one, two = runs
    for rank in (0, 1):
        assert torch.equal(two[case][rank]["selection"], one[case]["selection"])
        torch.testing.assert_close(two[case][rank]["selection_weights"], one[case]["selection_weights"])


def test_sharded_features(runs):
    one, two = runs
    for rank in (0, 1):
        assert torch.equal(two["features"][rank]["features"], one["features"]["features"])


def test_resume_two_processes(runs):
    "Stopped at step 2 and resumed on both processes: the same weights as one uninterrupted process; log written once."
    one, two = runs
    for rank in (0, 1):
        r = two["resume"][rank]
        assert r["resumed_at"] == 2
        assert W.compare(one["ddpm"], {**r, "losses": torch.cat([one["ddpm"]["losses"][:2], r["losses"]])}) == []
    assert two["resume"][0]["log_steps"] == [1, 2, 3, 4]     # the main process logs each step once
    assert "log_steps" not in two["resume"][1]


def test_bench_checks_agree(runs):
    "bench/scaleout.py's same_results_as_single_process comes from check_all: it must agree with the tests above."
    one, two = runs
    assert W.check_all(one, two) == {c: [] for c in W.CASES}
