"""Generative metrics: Frechet distance, improved precision/recall, class histograms, encoders."""
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from effdata.data import ImageDataset, load_dataset
from effdata.metrics import (FeatureStats, class_histogram, encode, feature_stats, frechet_distance,
                             frechet_distance_from_stats, generative_scores, histogram_distance,
                             inception_encoder, precision_recall)
from effdata.models import pretrained


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------- Frechet distance
def _fd_scipy(a, b):
    "pytorch-fid's formula (scipy sqrtm of the product), an independent computation."
    m1, m2, c1, c2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(c1 @ c2)
    return ((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean.real)


def test_fd_self_is_zero(rng):
    """Full-rank and rank-deficient sets (dead ReLU units, fewer samples than dimensions)."""
    full = rng.standard_normal((400, 32)) @ rng.standard_normal((32, 32))
    dead = np.maximum(rng.standard_normal((300, 128)) @ rng.standard_normal((128, 128)), 0)
    dead[:, :40] = 0
    few = rng.standard_normal((50, 200))
    for x in (full, dead, few):
        fd = frechet_distance(x, x)
        assert isinstance(fd, float)
        assert 0 <= fd < 1e-6 * np.trace(np.cov(x, rowvar=False))


def test_fd_closed_form_diagonal(rng):
    d = 20
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = rng.uniform(0.1, 4, d), rng.uniform(0.1, 4, d)
    closed = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert frechet_distance_from_stats(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(closed, rel=1e-10)
    n = 20_000   # from samples of those Gaussians: within sampling error
    xa = mu1 + rng.standard_normal((n, d)) * np.sqrt(s1)
    xb = mu2 + rng.standard_normal((n, d)) * np.sqrt(s2)
    assert frechet_distance(xa, xb) == pytest.approx(closed, rel=0.03)


def test_fd_closed_form_full_scaled(rng):
    d = 24
    a = rng.standard_normal((d, d)); S = a @ a.T / d
    mu1, mu2, c = rng.standard_normal(d), rng.standard_normal(d), 0.6
    closed = ((mu1 - mu2) ** 2).sum() + (1 - c) ** 2 * np.trace(S)
    assert frechet_distance_from_stats(mu1, S, mu2, c ** 2 * S) == pytest.approx(closed, rel=1e-10)


def test_fd_matches_scipy_sqrtm(rng):
    xa = rng.standard_normal((700, 40)) @ rng.standard_normal((40, 40))
    xb = rng.standard_normal((500, 40)) @ rng.standard_normal((40, 40)) + 0.3
    assert frechet_distance(xa, xb) == pytest.approx(_fd_scipy(xa, xb), rel=1e-6)
    assert frechet_distance(xa, xb) == pytest.approx(frechet_distance(xb, xa), rel=1e-10)


class _Identity(nn.Module):
    "torchmetrics feature extractor that returns the features it is fed."
    def __init__(self, num_features):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


def test_fd_matches_torchmetrics(rng):
    from torchmetrics.image.fid import FrechetInceptionDistance
    xa = np.maximum(rng.standard_normal((900, 64)) @ rng.standard_normal((64, 64)), 0)
    xb = np.maximum(rng.standard_normal((800, 64)) @ rng.standard_normal((64, 64)) + 0.5, 0)
    m = FrechetInceptionDistance(feature=_Identity(64))
    m.update(torch.from_numpy(xa), real=True)
    m.update(torch.from_numpy(xb), real=False)
    ref = m.compute().item()
    assert frechet_distance(xa, xb) == pytest.approx(ref, rel=1e-3)
    assert frechet_distance(torch.from_numpy(xa).float(), xb) == pytest.approx(ref, rel=1e-3)  # float32 in


def test_feature_stats_can_be_cached(rng):
    xa, xb = rng.standard_normal((300, 16)), rng.standard_normal((200, 16)) + 1
    st = feature_stats(xa)
    assert isinstance(st, FeatureStats) and st.mu.shape == (16,) and st.sigma.shape == (16, 16)
    assert st.mu.dtype == np.float64 and st.sigma.dtype == np.float64
    mu, sigma = st    # unpacks as a pair
    fd = frechet_distance(xa, xb)
    assert frechet_distance(st, xb) == pytest.approx(fd, rel=1e-12)
    assert frechet_distance(xb, (mu, sigma)) == pytest.approx(fd, rel=1e-12)
    assert frechet_distance_from_stats(mu, sigma, *feature_stats(xb)) == pytest.approx(fd, rel=1e-12)


@pytest.mark.parametrize("a, b, match", [
    (np.ones((10, 8)), np.ones((10, 4)), "feats_a has 8 features per sample but feats_b has 4"),
    (np.ones((1, 8)), np.ones((10, 8)), "feats_a holds 1 sample"),
    (np.ones((10, 8)), np.r_[np.ones((3, 8)), np.full((1, 8), np.inf)], r"feats_b holds 8 NaN/inf value\(s\) \(first in row 3\)"),
    (np.full((10, 8), np.nan), np.ones((10, 8)), "feats_a holds 80 NaN/inf"),
    (np.ones(8), np.ones((10, 8)), r"feats_a has shape \(8,\): pass features as an \(N, D\) array"),
])
def test_fd_errors(a, b, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(a, b)


def test_fd_from_stats_errors():
    with pytest.raises(ValueError, match="mu1 has 3 features per sample but mu2 has 2"):
        frechet_distance_from_stats(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match=r"sigma2 has shape \(3, 3\) but mu2 has 2 entries"):
        frechet_distance_from_stats(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="sigma1 is not positive semi-definite"):
        frechet_distance_from_stats(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="sigma2 is not symmetric"):
        frechet_distance_from_stats(np.zeros(2), np.eye(2), np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="mu1 holds 1 NaN/inf"):
        frechet_distance_from_stats(np.array([0, np.nan]), np.eye(2), np.zeros(2), np.eye(2))


# ---------------------------------------------------------------- precision / recall
def _pr_brute(real, fake, k):
    d_rr = ((real[:, None] - real[None]) ** 2).sum(-1)
    d_ff = ((fake[:, None] - fake[None]) ** 2).sum(-1)
    d_fr = ((fake[:, None] - real[None]) ** 2).sum(-1)
    rad_r, rad_f = np.sort(d_rr, 1)[:, k], np.sort(d_ff, 1)[:, k]
    return dict(precision=float((d_fr <= rad_r[None]).any(1).mean()),
                recall=float((d_fr.T <= rad_f[None]).any(1).mean()))


@pytest.mark.parametrize("k", [1, 3, 7])
def test_pr_matches_brute_force(rng, k):
    real, fake = rng.standard_normal((240, 6)), 0.7 * rng.standard_normal((190, 6)) + 0.5
    ref = _pr_brute(real, fake, k)
    assert 0 < ref["precision"] < 1 and 0 < ref["recall"] < 1
    for chunk in (17, 1024):
        assert precision_recall(real, fake, k, chunk_size=chunk) == ref
    assert precision_recall(torch.from_numpy(real).float(), torch.from_numpy(fake).float(), k) == ref


def test_pr_extremes(rng):
    real = rng.standard_normal((200, 10))
    assert precision_recall(real, real) == dict(precision=1.0, recall=1.0)
    assert precision_recall(real, rng.standard_normal((150, 10)) + 50) == dict(precision=0.0, recall=0.0)
    # a generator that drops one of two modes: realistic samples, half the variety
    pr = precision_recall(np.r_[real, real + 20], rng.standard_normal((200, 10)))
    assert pr["precision"] > 0.8 and pr["recall"] < 0.5


def test_pr_errors(rng):
    real, fake = rng.standard_normal((20, 4)), rng.standard_normal((5, 4))
    with pytest.raises(ValueError, match="k=5 but fake_feats holds 5 samples"):
        precision_recall(real, fake, k=5)
    with pytest.raises(ValueError, match="k=20 but real_feats holds 20 samples"):
        precision_recall(real, rng.standard_normal((30, 4)), k=20)
    with pytest.raises(ValueError, match="k=0"):
        precision_recall(real, fake, k=0)
    with pytest.raises(ValueError, match="real_feats has 4 features per sample but fake_feats has 3"):
        precision_recall(real, fake[:, :3])
    with pytest.raises(ValueError, match="real_feats holds 1 NaN/inf"):
        precision_recall(np.r_[real, [[np.nan, 0, 0, 0]]], fake)
    with pytest.raises(ValueError, match="chunk_size=0"):
        precision_recall(real, fake, chunk_size=0)


# ---------------------------------------------------------------- histograms
def test_histogram_distance():
    assert histogram_distance([5, 5], [1, 1]) == 0.0
    assert histogram_distance([1, 0, 0], [0, 0, 2]) == pytest.approx(1.0)
    assert histogram_distance(torch.tensor([3, 1]), np.array([0.5, 0.5])) == pytest.approx(0.25)
    assert histogram_distance([3, 1], [1, 1], "kl") == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert histogram_distance([0, 1], [1, 1], "kl") == pytest.approx(math.log(2))
    assert histogram_distance([1, 1], [1, 0], "kl") == math.inf
    with pytest.raises(ValueError, match="hist has 2 classes but reference has 3"):
        histogram_distance([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="reference must be non-negative"):
        histogram_distance([1, 2], [0, 0])
    with pytest.raises(ValueError, match="metric='js'"):
        histogram_distance([1, 2], [1, 2], "js")


class _ByMeanBrightness(nn.Module):
    "Toy 3-class classifier: class = which third of [0, 1] the mean pixel falls in."
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([-(m - c).abs() for c in (1 / 6, 1 / 2, 5 / 6)], 1) + self.w


def test_class_histogram():
    x = torch.cat([torch.full((4, 1, 5, 5), 0.1), torch.full((2, 1, 5, 5), 0.5), torch.full((1, 1, 5, 5), 0.9)])
    h = class_histogram(x, _ByMeanBrightness(), 3, batch_size=3)
    assert h.tolist() == [4, 2, 1] and h.dtype == torch.int64
    assert class_histogram(x[:4], _ByMeanBrightness()).tolist() == [4, 0, 0]      # num_classes from the outputs
    ds = ImageDataset((x * 255).round().to(torch.uint8), torch.zeros(7, dtype=torch.int64), ["a"])
    assert class_histogram(ds, _ByMeanBrightness(), 3).tolist() == [4, 2, 1]
    with pytest.raises(ValueError, match="classifier outputs 3 scores per image but num_classes=10"):
        class_histogram(x, _ByMeanBrightness(), 10)


# ---------------------------------------------------------------- encoders
def test_encode_modes_and_inputs():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten())
    net.train()
    x = torch.rand(7, 3, 8, 8)
    f = encode(x, net, batch_size=3)
    assert f.shape == (7, 4 * 6 * 6) and f.dtype == torch.float32 and not f.requires_grad
    assert net.training                                         # the mode is restored
    torch.testing.assert_close(f, net.eval()(x).detach())      # eval mode inside (dropout off, BN running stats)
    u8 = (x * 255).round().to(torch.uint8)
    torch.testing.assert_close(encode(u8, net), encode(u8.float() / 255, net))
    ds = ImageDataset(u8, torch.zeros(7, dtype=torch.int64), ["a"])
    torch.testing.assert_close(encode(ds, net, batch_size=2), encode(u8, net))
    torch.testing.assert_close(encode(x * 1.05 - 0.02, net), encode((x * 1.05 - 0.02).clamp(0, 1), net))  # overshoot clipped
    with pytest.raises(ValueError, match=r"spans \[-1, 1\] but float images must be in \[0, 1\]: map \[-1, 1\] images"):
        encode(torch.cat([torch.zeros(1, 3, 8, 8) - 1, torch.ones(1, 3, 8, 8)]), net)
    with pytest.raises(ValueError, match="add a channel axis"):
        encode(x[:, 0], net)
    with pytest.raises(TypeError, match="pass an nn.Module or a callable"):
        encode(x, "resnet")
    with pytest.raises(ValueError, match=r"must map \(B, C, H, W\) images to \(B, D\) vectors"):
        encode(x, lambda b: b.sum())


def test_inception_encoder_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError) as e:
        inception_encoder()
    msg = str(e.value)
    assert str(tmp_path / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth") in msg
    assert 'inception_v3(weights="DEFAULT")' in msg and 'pretrained("cifar10_cnn").features' in msg
    with pytest.raises(FileNotFoundError, match="path='/nowhere/w.pth'"):
        inception_encoder(path="/nowhere/w.pth")


def test_inception_encoder_loads_from_cache(tmp_path, monkeypatch):
    from torchvision.models import inception_v3
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    f = tmp_path / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth"
    f.parent.mkdir(parents=True)
    torch.save(inception_v3(weights=None, init_weights=False).state_dict(), f)   # stand-in weights, same layout
    enc = inception_encoder()
    assert not enc.training
    assert encode(torch.rand(1, 3, 32, 32), enc).shape == (1, 2048)
    assert encode(torch.rand(1, 1, 28, 28), enc).shape == (1, 2048)             # grey images
    torch.save({"fc.weight": torch.zeros(3)}, f)
    with pytest.raises(ValueError, match="is not torchvision's Inception-v3 state dict"):
        inception_encoder()


def test_import_attempts_no_network():
    code = ("import socket\n"
            "def no(*a, **k): raise RuntimeError('network access at import')\n"
            "socket.socket.connect = no; socket.create_connection = no; socket.getaddrinfo = no\n"
            "import effdata.metrics\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def cifar(data_root):
    test = load_dataset("cifar10", "test", root=data_root).subset(range(500))
    train = load_dataset("cifar10", "train", root=data_root).subset(range(500))
    return test, train, pretrained("cifar10_cnn", root=data_root)


def test_fd_cifar_train_vs_perturbed(cifar):
    from torchvision.transforms.functional import gaussian_blur
    test, train, net = cifar
    real = encode(test, net.features)
    x = train.tensors()[0]
    g = torch.Generator().manual_seed(0)
    fd = {name: generative_scores(real, imgs, net.features)["fd"] for name, imgs in {
        "train": x, "noise": (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1),
        "blur": gaussian_blur(x, [5, 5], [1.5, 1.5])}.items()}
    print(fd)
    # 500 images each (the notebook uses all 1017: train 8.5, noise 137, blur 360); FD's small-sample bias
    # lifts the train-vs-test floor to ~30 here
    assert fd["noise"] > 3 * fd["train"] and fd["blur"] > 5 * fd["train"]


def test_generative_scores_cifar(cifar):
    test, train, net = cifar
    te, tr = test.subset(range(100)), train.subset(range(100))
    s = generative_scores(te, tr, net.features, classifier=net)
    assert sorted(s) == ["class_counts", "class_tv", "fd", "precision", "real_class_counts", "recall"]
    assert s["class_counts"].sum() == 100 and s["real_class_counts"].sum() == 100 and 0 <= s["class_tv"] <= 1
    feats = encode(te, net.features)
    assert generative_scores(feats, tr, net.features)["fd"] == pytest.approx(s["fd"], rel=1e-6)
    same = generative_scores(feats, feats, None)
    assert same["fd"] < 1e-9 * s["fd"] and same["precision"] == same["recall"] == 1.0
    with pytest.raises(ValueError, match="classifier= needs images, but real is a feature array"):
        generative_scores(feats, tr, net.features, classifier=net)
    with pytest.raises(ValueError, match="k=3 but fake holds 2 samples"):
        generative_scores(te, tr.subset(range(2)), net.features)
    with pytest.raises(ValueError, match="fake spans"):
        generative_scores(te, torch.rand(5, 3, 32, 32) * 255, net.features)


def test_class_histogram_cifar(cifar):
    test, _, net = cifar
    h = class_histogram(test, net, 10)
    assert histogram_distance(h, test.class_counts()) < 0.1     # an 82.5 % classifier: close to the true counts
