"""effdata.attacks on the two MNIST LeNet5s of the zoo (clean and PGD-trained)."""
import sys

import pytest
import torch

from effdata.attacks import (CW, FGSM, PGD, AutoAttack, TradesKL, evaluate, get_attack, margin_loss, perturb_dataset,
                             robust_accuracy)


@pytest.fixture(scope="module")
def mnist(data_root):
    from effdata.data import load_dataset
    return load_dataset("mnist", "test", root=data_root).subset(range(256))


@pytest.fixture(scope="module")
def pair(data_root):
    from effdata.models import pretrained
    return pretrained("mnist_lenet5", root=data_root), pretrained("mnist_lenet5_robust", root=data_root)


def batch(ds, n=128):
    return ds.images[:n].float() / 255, ds.targets[:n]


@pytest.mark.parametrize("atk", [FGSM(0.3), FGSM(0.3, random_start=True), PGD(0.3, 0.05, 5), PGD(0.1, 0.1, 3),
                                 CW(0.3, 0.05, 5), TradesKL(0.3, 0.05, 3), PGD(0.3, 0.05, 5, targeted=True)],
                         ids=repr)
def test_linf_budget_and_box(atk, mnist, pair):
    x, y = batch(mnist)
    xa = atk(pair[0], x, y)
    assert xa.shape == x.shape and not xa.requires_grad
    assert (xa - x).abs().max() <= atk.eps + 1e-6
    assert xa.min() >= 0 and xa.max() <= 1
    assert (xa != x).any()


def test_l2_budget(mnist, pair):
    x, y = batch(mnist)
    xa = get_attack("pgd_l2", eps=1.5, steps=5)(pair[0], x, y)
    assert ((xa - x).flatten(1).norm(dim=1) <= 1.5 + 1e-4).all()
    assert xa.min() >= 0 and xa.max() <= 1


def test_pgd_stronger_than_fgsm_and_robust_model_holds(mnist, pair):
    clean, robust = pair
    res = {n: evaluate(m, mnist, {"fgsm": FGSM(0.3), "pgd": PGD(0.3, 0.01, 40, seed=0)}, batch_size=128)
           for n, m in (("clean", clean), ("robust", robust))}
    assert res["clean"]["clean"] > 0.95 and res["robust"]["clean"] > 0.95
    assert res["clean"]["pgd"] <= res["clean"]["fgsm"]
    assert res["robust"]["pgd"] <= res["robust"]["fgsm"] + 0.01
    assert res["clean"]["fgsm"] < 0.5 < 0.85 < res["robust"]["fgsm"]
    assert res["robust"]["pgd"] - res["clean"]["pgd"] > 0.5


def test_cw_margin_and_targeted(mnist, pair):
    x, y = batch(mnist, 64)
    clean = pair[0]
    with torch.no_grad():
        assert (margin_loss(clean(CW(0.3, 0.02, 20)(clean, x, y)), y) > 0).float().mean() > 0.8
        t = (y + 3) % 10
        assert (clean(PGD(0.3, 0.01, 40, targeted=True)(clean, x, t)).argmax(1) == t).float().mean() > 0.8


def test_seeded_attacks_repeat_and_leave_the_model_alone(mnist, pair):
    x, y = batch(mnist, 32)
    m = pair[0]
    m.train()
    a = PGD(0.3, 0.05, 3, seed=3)(m, x, y)
    b = PGD(0.3, 0.05, 3, seed=3)(m, x, y)
    c = PGD(0.3, 0.05, 3, seed=4)(m, x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert m.training and all(p.grad is None for p in m.parameters())
    m.eval()


def test_zero_budget_is_identity(mnist, pair):
    x, y = batch(mnist, 8)
    assert torch.equal(PGD(0.0)(pair[0], x, y), x)


def test_bad_input(mnist, pair):
    x, y = batch(mnist, 8)
    m = pair[0]
    with pytest.raises(ValueError, match=r"values in \[0, 255\]"):
        PGD(0.3)(m, x * 255, y)
    with pytest.raises(TypeError, match="divide uint8 images by 255"):
        PGD(0.3)(m, mnist.images[:8], y)
    with pytest.raises(ValueError, match="one integer label per image"):
        FGSM(0.3)(m, x, y[:5])
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        FGSM(0.3)(m, x[0], y[:1])
    with pytest.raises(ValueError, match="eps=-1"):
        PGD(-1)
    with pytest.raises(ValueError, match="steps=0"):
        PGD(0.1, steps=0)
    with pytest.raises(ValueError, match="unknown attack 'jsma'"):
        get_attack("jsma")


def test_over_a_dataset(mnist, pair):
    xa = perturb_dataset(FGSM(0.3), pair[0], mnist, batch_size=100, limit=150)
    assert xa.shape == (150, 1, 28, 28)
    x = mnist.images[:150].float() / 255
    assert torch.allclose(xa, FGSM(0.3)(pair[0], x, mnist.targets[:150]), atol=1e-6)
    acc = robust_accuracy(pair[0], mnist, FGSM(0.3), limit=150)
    with torch.no_grad():
        assert acc == pytest.approx((pair[0](xa).argmax(1) == mnist.targets[:150]).float().mean().item())


def test_autoattack_official_code(mnist, pair):
    pytest.importorskip("pyautoattack")
    x, y = batch(mnist, 64)
    robust = pair[1]
    xa = AutoAttack(0.3, attacks=["apgd-ce"], seed=0)(robust, x, y)
    assert (xa - x).abs().max() <= 0.3 + 1e-5
    with torch.no_grad():
        aa = (robust(xa).argmax(1) == y).float().mean()
        pgd = (robust(PGD(0.3, 0.01, 20, seed=0)(robust, x, y)).argmax(1) == y).float().mean()
    assert aa <= pgd + 0.02


def test_autoattack_missing_gives_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyautoattack", None)
    with pytest.raises(ImportError, match="pip install pyautoattack"):
        AutoAttack(8 / 255)
