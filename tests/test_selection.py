"""Coreset selection: scores against scikit-learn, the class-balanced cut, determinism, bad input, the explorer."""
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from effdata.data import Selection, load_dataset
from effdata.features import encoder, extract
from effdata.selection import (CoresetExplorer, CoresetSelector, compute_scores, coreset, gaussian_scores, knn_scores,
                               moderate_scores, ppca_scores, select)


@pytest.fixture(scope="module")
def cifar_feats(data_root):
    ds = load_dataset("cifar10", root=data_root).subset(range(3000))
    return ds, extract(encoder("pixels", dataset=ds, dim=48), ds, progress=False).numpy()


def test_gaussian_matches_sklearn(cifar_feats):
    from sklearn.mixture import GaussianMixture
    ds, f = cifar_feats
    y = ds.targets.numpy()
    ours = gaussian_scores(f, y)
    for c in (0, 7):
        idx = np.flatnonzero(y == c)
        gm = GaussianMixture(1, covariance_type="full", reg_covar=1e-5).fit(f[idx].astype(np.float64))
        # sklearn uses the biased (1/n) covariance: compare rankings, and values to within that difference
        ref = gm.score_samples(f[idx].astype(np.float64))
        assert np.corrcoef(ours[idx], ref)[0, 1] > 0.9999
        assert np.abs(ours[idx] - ref).max() < 0.05 * np.abs(ref).mean()


def test_knn_matches_sklearn(cifar_feats):
    from sklearn.neighbors import NearestNeighbors
    ds, f = cifar_feats
    y = ds.targets.numpy()
    ours = knn_scores(f, y, k=5, chunk=100)
    idx = np.flatnonzero(y == 3)
    d = NearestNeighbors(n_neighbors=6).fit(f[idx]).kneighbors(f[idx])[0][:, 5]
    np.testing.assert_allclose(-ours[idx], d, rtol=1e-3, atol=1e-3)


def test_cut_is_class_balanced_and_deterministic(cifar_feats):
    ds, f = cifar_feats
    y = ds.targets.numpy()
    for score in ("gaussian", "ppca", "knn", "moderate", "random"):
        a = CoresetSelector(score, seed=5).fit(f, y).select(0.2)
        b = CoresetSelector(score, seed=5).fit(f, y).select(0.2)
        assert np.array_equal(a.indices, b.indices), score
        assert len(a) == 600
        share = a.class_counts(y, 10) / np.bincount(y, minlength=10)
        assert np.all(np.abs(share - 0.2) < 0.01), (score, share)


def test_global_ranking_can_unbalance():
    y = np.repeat([0, 1], 50)
    s = np.r_[np.zeros(50), np.ones(50)]
    assert select(s, 0.5, y, per_class=False).class_counts(y).tolist() == [0, 50]
    assert select(s, 0.5, y).class_counts(y).tolist() == [25, 25]


@pytest.fixture(scope="module")
def cifar100_feats(data_root):
    "The long-tailed CIFAR-100 subset (281 images; many classes hold 0-2) under the pixels encoder."
    ds = load_dataset("cifar100", root=data_root)
    return ds, extract(encoder("pixels", dataset=ds), ds, progress=False).numpy(), ds.targets.numpy()


@pytest.mark.parametrize("score", ["gaussian", "ppca", "knn", "moderate", "random"])
def test_long_tail_every_score(cifar100_feats, score):
    ds, f, y = cifar100_feats
    counts = np.bincount(y, minlength=100)
    assert len(ds) == 281 and (counts == 1).any() and (counts == 0).any()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = compute_scores(f, y, score)
    assert s.shape == (281,) and np.isfinite(s).all()
    if score in ("gaussian", "ppca", "knn"):    # one warning, naming the one-sample classes
        assert len(w) == 1, [str(x.message) for x in w]
        msg = str(w[0].message)
        for c in np.flatnonzero(counts == 1):
            assert re.search(rf"\b{c}\b", msg.split("scored")[0].rsplit(";", 1)[-1]), (c, msg)
    for fraction in (0.05, 0.3):
        want = round(fraction * 281)                       # 14 and 84
        for per_class in (True, False):
            sel = select(s, fraction, y, per_class=per_class)
            assert len(sel) == want, (score, fraction, per_class, len(sel))
            assert sel.info["fraction"] == fraction and sel.info["fraction_achieved"] == want / 281
        kept = select(s, fraction, y).class_counts(y, 100)
        assert np.all(np.abs(kept - fraction * counts) < 1), score   # largest remainder: within one of the exact share


def test_long_tail_quota_and_min_per_class(cifar100_feats):
    ds, f, y = cifar100_feats
    counts = np.bincount(y, minlength=100)
    s = compute_scores(f, y, "random")
    kept = select(s, 0.05, y).class_counts(y, 100)
    present = np.flatnonzero(counts)                       # largest remainder; ties go to the lower class
    base = np.floor(0.05 * counts[present]); rem = 0.05 * counts[present] - base
    order = sorted(range(len(present)), key=lambda i: (-rem[i], i))[:14 - int(base.sum())]
    expected = base.copy(); expected[order] += 1
    assert kept.sum() == 14 and np.array_equal(kept[present], expected) and (kept[counts == 1] == 0).all()
    with pytest.warns(UserWarning, match=r"kept 94 of 281 samples \(33.5%\), more than the 14"):
        sel = select(s, 0.05, y, min_per_class=1)
    assert len(sel) == 94 and np.array_equal(sel.class_counts(y, 100) > 0, counts > 0)
    assert sel.info["fraction_achieved"] == 94 / 281 and sel.info["min_per_class"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # enough room: no warning, the requested total
        assert len(select(s, 0.5, y, min_per_class=1)) == round(0.5 * 281)


@pytest.mark.parametrize("fraction", [0, -0.1, 1.2, 50, float("nan")])
def test_bad_fraction(fraction):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        select(np.arange(10.0), fraction)


def test_bad_features():
    with pytest.raises(ValueError, match="10 rows but labels has 9"):
        compute_scores(np.ones((10, 2)), np.zeros(9, int))
    f = np.random.default_rng(0).normal(size=(10, 2)); f[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinite values in 1 rows \(first: \[4\]\)"):
        compute_scores(f, np.zeros(10, int))
    with pytest.raises(ValueError, match="unknown score 'density'"):
        compute_scores(np.ones((10, 2)), None, "density")
    with pytest.raises(ValueError, match="integer class labels"):
        compute_scores(np.ones((3, 2)), np.array([0.5, 1, 1]))


def test_small_classes():
    rng = np.random.default_rng(0)
    f, y = rng.normal(size=(40, 8)), np.r_[np.zeros(35, int), np.ones(5, int)]
    with pytest.warns(UserWarning, match="class 1 has no more samples than the 8 feature dimensions: Ledoit-Wolf"):
        s = gaussian_scores(f, y)
    assert np.isfinite(s).all()
    with pytest.warns(UserWarning, match="class 2 has 1 sample: scored under one Gaussian of all samples"):
        assert np.isfinite(gaussian_scores(f[:3], [0, 0, 2])).all()
    with pytest.warns(UserWarning, match=r"class 1 \(k=4\) has at most 5 samples"):
        knn_scores(f, y, k=5)


def test_moderate_keeps_the_middle():
    x = np.arange(101.0)[:, None]
    kept = select(moderate_scores(x), 0.1).indices
    d = np.abs(x[:, 0] - 50)
    assert np.all(np.abs(d[kept] - np.median(d)) <= 5)


def test_feature_cache_skips_the_encoder(tmp_path):
    class Counting(nn.Module):
        def __init__(self):
            super().__init__(); self.lin = nn.Linear(64, 4); self.calls = 0
        def forward(self, x):
            self.calls += 1
            return self.lin(x.flatten(1))
    ds = load_dataset("digits")
    enc = Counting()
    a = extract(enc, ds, cache=tmp_path, progress=False); n = enc.calls
    b = extract(enc, ds, cache=tmp_path, progress=False)
    assert n > 0 and enc.calls == n and torch.equal(a, b)
    with torch.no_grad():
        enc.lin.weight.add_(1)               # other weights: another cache entry
    extract(enc, ds, cache=tmp_path, progress=False)
    assert enc.calls > n and len(list(tmp_path.glob("*.safetensors"))) == 2


def test_missing_torchvision_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="torch hub cache.*encoder\\('pixels'\\)"):
        encoder("resnet18")


def test_coreset_end_to_end_records_provenance(data_root, tmp_path):
    ds = load_dataset("cifar10", "test", root=data_root)
    sel = coreset(ds, 0.3, score="knn", encoder="cifar10_cnn", cache=tmp_path, progress=False)
    assert sel.info["method"] == "knn" and sel.info["encoder"] == "cifar10_cnn" and sel.info["dataset"] == "cifar10"
    back = Selection.load(sel.save(tmp_path / "c.npz"))
    assert np.array_equal(back.indices, sel.indices) and back.info["dataset_key"] == sel.info["dataset_key"]


def test_explorer_controls_change_figures():
    ds = load_dataset("digits")
    f = extract(encoder("pixels", dataset=ds, dim=32), ds, progress=False)
    ex = CoresetExplorer(ds, f, fraction=0.2)
    n = len(ex.scatter.data[1].x)
    ex.fraction.value = 0.5
    assert len(ex.scatter.data[1].x) > n and len(ex.selection) == round(0.5 * len(ds))
    cut = ex.hist.layout.shapes[0].x0
    ex.score_w.value = "knn"
    assert ex.hist.layout.shapes[0].x0 != cut
    ex.klass.value = 7
    assert set(ex.y[ex.selection.indices]) == set(range(10))        # the selection is still over all classes
    assert len(ex.hist.data[0].x) + len(ex.hist.data[1].x) == int((ex.y == 7).sum())
    fig = ex.figure()
    assert len(fig.data) == 5


def test_cli_select_then_train(tmp_path):
    exe = Path(sys.executable).parent / "effdata"
    r = subprocess.run([str(exe), "select", "--dataset", "digits", "--score", "gaussian", "--encoder", "pixels",
                        "--fraction", "0.3", "--out", str(tmp_path / "c.npz"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "431 of 1437" in r.stdout
    r = subprocess.run([str(exe), "train", "--selection", str(tmp_path / "c.npz"), "--epochs", "2", "--quiet",
                        "--run", str(tmp_path / "run")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "| 431 " in r.stdout
