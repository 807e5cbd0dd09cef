"""DRO class reweighting: the update rule, the proxy trainer, degenerate cases."""
import warnings

import numpy as np
import pytest
import torch

from effdata.data import Selection, load_dataset
from effdata.diffusion import DDPMTrainer, get_config, make_unet
from effdata.reweighting import ClassWeights, ClassWeightsExplorer, DROTrainer, dro_step, reweight

TINY = get_config("digits_small", block_out_channels=(16, 32), attention_resolutions=(4,))


def test_forced_excess_raises_that_class_and_stays_on_simplex():
    K = 5
    alpha, lam = torch.full((K,), 1 / K, dtype=torch.float64), torch.zeros(K, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    traj = []
    for _ in range(400):
        y = torch.randint(0, K, (40,), generator=g)
        e = torch.where(y == 4, 0.5, 0.2) + 0.05 * torch.randn(40, generator=g, dtype=torch.float64)
        alpha, lam, _ = dro_step(alpha, lam, e, y, step_size=0.5, smoothing=1e-2)
        traj.append(alpha)
    traj = torch.stack(traj)
    assert torch.allclose(traj.sum(1), torch.ones(400, dtype=torch.float64))
    assert (traj >= 0).all() and traj[-1, 4] > 0.9 and traj[0, 4] > 1 / K
    avg = traj.cumsum(0) / torch.arange(1, 401)[:, None]
    assert (avg[-1] - avg[-100]).abs().max() < 0.02     # the time average converges


def test_negative_excess_is_clipped():
    a, lam, b = dro_step(torch.full((2,), 0.5), torch.zeros(2), torch.tensor([-1.0, -2.0, 0.3]), torch.tensor([0, 0, 1]))
    assert b[0] == 0 and abs(b[1] - 0.3) < 1e-6 and a[1] > a[0]


def test_ema_of_excess():
    _, lam, _ = dro_step(torch.full((2,), 0.5), torch.tensor([1.0, 1.0]), torch.tensor([0.0]), torch.tensor([0]), excess_ema=0.9)
    assert abs(lam[0] - 0.9) < 1e-9 and lam[1] == 1.0


@pytest.fixture(scope="module")
def ref_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    DDPMTrainer(load_dataset("digits"), TINY, steps=10, batch_size=32, progress=False, run=d / "ref").fit()
    return d / "ref"


def test_trainer_weights_and_explorer(ref_run):
    ds = load_dataset("digits")
    cw = reweight(ds, ref_run, TINY, steps=8, batch_size=32, progress=False)
    assert abs(cw.weights.sum() - 1) < 1e-9 and cw.trajectory.shape == (8, 10) and cw.excess.shape == (8, 10)
    sel = cw.apply(Selection.full(len(ds)), ds.targets)
    assert sel.weights.shape == (len(ds),) and abs(sel.weights.mean() - 1) < 0.1
    ex = ClassWeightsExplorer(cw)
    ex.step.value = 3
    assert list(ex.bars.data[1].y) == list(cw.trajectory[2])


def test_class_absent_from_coreset(ref_run):
    ds = load_dataset("digits")
    keep = np.flatnonzero(ds.targets.numpy() != 7)[::3]
    with pytest.warns(UserWarning, match=r"\['7'\] have no sample"):
        cw = reweight(ds, ref_run, TINY, selection=Selection(keep, len(ds)), steps=4, batch_size=32, progress=False)
    assert cw.weights[7] == 0 and abs(cw.weights.sum() - 1) < 1e-9


def test_collapse_warning(ref_run):
    ds = load_dataset("digits")
    with pytest.warns(UserWarning, match="collapsed"):
        DROTrainer(ds, ref_run, TINY, steps=6, batch_size=32, step_size=500.0, smoothing=0.0, progress=False,
                   collapse_warn=0.2).fit().result()


def test_reference_mismatch():
    ds = load_dataset("digits")
    with pytest.raises(ValueError, match="sample_size: reference 28 vs proxy 8"):
        DROTrainer(ds, make_unet("mnist_small"), TINY, steps=2)
    with pytest.raises(ValueError, match="block_out_channels"):
        DROTrainer(ds, make_unet("digits_small"), TINY, steps=2)
    with pytest.raises(FileNotFoundError, match="neither a U-Net"):
        DROTrainer(ds, "/nonexistent/run", TINY, steps=2)


def test_bad_parameters(ref_run):
    ds = load_dataset("digits")
    for kw, msg in (({"smoothing": 2.0}, "smoothing=2.0"), ({"step_size": 0}, "step_size=0"), ({"excess_ema": 1.0}, "excess_ema=1.0")):
        with pytest.raises(ValueError, match=msg):
            DROTrainer(ds, ref_run, TINY, steps=2, **kw)


def test_weights_file_roundtrip(tmp_path):
    cw = ClassWeights(np.array([0.5, 0.3, 0.2, 0.0]), list("abcd"), np.ones((3, 4)) / 4, np.full((3, 4), np.nan))
    back = ClassWeights.load(cw.save(tmp_path / "w.json"))
    assert np.array_equal(back.weights, cw.weights) and np.isnan(back.excess).all()
    assert back.sample_weights([0, 3]).tolist() == [1.5, 0.0]
