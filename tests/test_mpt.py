"""Multi-prize lottery tickets: biprop layers, kept fractions, trainer, packed inference, bad input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effdata.data import load_dataset
from effdata.models import CIFAR10_MEAN, CIFAR10_STD, MLP, SmallCNN
from effdata.mpt import (ARCHS, MASK_METHODS, BipropConv2d, BipropLinear, MaskExplorer, MPTTrainer, Sign, biprop_layers,
                         build, convert, cubic_kept, kept_count, kept_fractions, set_kept, sweep_summary, topk_mask,
                         train_mpt)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits"), load_dataset("digits", "test")


@pytest.mark.parametrize("kept", [0.013, 0.1, 0.37, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("method", MASK_METHODS)
def test_exact_kept_count_and_alpha(kept, method):
    for layer in (BipropLinear(33, 17, kept=kept, seed=3, mask_method=method),
                  BipropConv2d(5, 7, 3, padding=1, kept=kept, seed=4, mask_method=method)):
        n = layer.scores.numel()
        m = layer.mask()
        assert int(m.sum()) == kept_count(n, kept) == max(1, round(kept * n))
        assert torch.allclose(layer.alpha(), layer.weight.abs()[m].mean(), rtol=1e-6)
        # the kept weights are the largest |scores|
        assert layer.scores.abs()[m].min() >= layer.scores.abs()[~m].max() if (~m).any() else True
        w = layer.effective_weight()
        assert torch.equal(w != 0, m) and torch.equal(torch.sign(w[m]), torch.where(layer.weight[m] >= 0, 1.0, -1.0))


def test_topk_mask_ties_keep_exactly_k():
    v = torch.tensor([1.0, 2.0, 2.0, 2.0, 3.0])
    for method in MASK_METHODS:
        m = topk_mask(v, 3, method)
        assert int(m.sum()) == 3 and m[4] and not m[0]


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_score_gradient_is_the_straight_through_rule(kind):
    torch.manual_seed(0)
    if kind == "linear":
        layer, x = BipropLinear(12, 9, kept=0.4, seed=1), torch.randn(6, 12)
        f = lambda w: F.linear(x, w)
    else:
        layer, x = BipropConv2d(3, 4, 3, stride=2, padding=1, kept=0.4, seed=2), torch.randn(2, 3, 7, 7)
        f = lambda w: F.conv2d(x, w, None, 2, 1)
    g = torch.randn_like(f(layer.effective_weight()))
    (layer(x) * g).sum().backward()
    leaf = layer.effective_weight().clone().requires_grad_()
    (f(leaf) * g).sum().backward()
    expected = leaf.grad * layer.weight * torch.sign(layer.scores.detach())
    assert torch.allclose(layer.scores.grad, expected, atol=1e-5, rtol=1e-4)
    assert layer.weight.grad is None                 # the weights stay frozen


def test_sign_forward_and_approx_sign_backward():
    x = torch.tensor([-1.5, -0.25, 0.0, 0.75, 1.0], requires_grad=True)
    y = Sign()(x)
    y.backward(torch.ones(5))
    assert y.tolist() == [-1, -1, 1, 1, 1]
    assert torch.allclose(x.grad, torch.tensor([0.0, 1.5, 2.0, 0.5, 0.0]))


def test_kept_one_is_a_pure_sign_network():
    net = build("conv2", (3, 16, 16), 10, kept=1.0, width=0.25, seed=0)
    for layer in biprop_layers(net).values():
        assert bool(layer.mask().all())
        sign = torch.where(layer.weight >= 0, 1.0, -1.0)
        assert torch.equal(layer.effective_weight(), layer.alpha() * sign)
        assert torch.allclose(layer.alpha(), layer.weight.abs().mean(), rtol=1e-6)
    x = torch.rand(3, 3, 16, 16)
    net.eval()
    conv = net.body[0]
    assert torch.allclose(conv(x), F.conv2d(x, conv.alpha() * torch.where(conv.weight >= 0, 1.0, -1.0), padding=1), atol=1e-5)


def test_weights_come_back_from_the_seed():
    a = BipropConv2d(4, 6, 3, kept=0.3, seed=11)
    sd = a.state_dict()
    assert "weight" not in sd and int(sd["weight_seed"]) == 11
    b = BipropConv2d(4, 6, 3, kept=0.9, seed=99)
    b.load_state_dict(sd)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.effective_weight(), b.effective_weight())
    assert torch.equal(build("mlp", (1, 8, 8), seed=5).body[1].weight, build("mlp", (1, 8, 8), seed=5).body[1].weight)


def test_global_mode_never_empties_a_layer():
    net = build("mlp", (1, 8, 8), 10, hidden=(64, 64), kept=0.05, seed=0)
    layers = list(biprop_layers(net).values())
    with torch.no_grad():
        layers[1].scores.mul_(1e-9)                  # this layer would lose every weight to a raw global ranking
    fr = set_kept(net, 0.05, "global", normalize=False)
    assert all(int(l.n_keep) >= 1 for l in layers) and int(layers[1].n_keep) == kept_count(layers[1].numel, 0.005)
    fr = set_kept(net, 0.05, "global")
    assert abs(fr["total"] - 0.05) < 0.005 and all(fr[n] > 0 for n in biprop_layers(net))
    for l in layers:
        assert int(l.mask().sum()) == int(l.n_keep)
    fr = set_kept(net, 0.2, "layer")
    assert all(abs(v - 0.2) < 1e-3 for v in fr.values())


def test_cubic_schedule():
    s = [cubic_kept(t, 200, 0.02, ramp=0.5) for t in range(201)]
    assert s[0] == 0.5 and abs(s[100] - 0.02) < 1e-12 and s[-1] == 0.02
    assert all(a >= b for a, b in zip(s, s[1:]))
    assert cubic_kept(0, 10, 0.9) == 0.9


@pytest.mark.parametrize("arch", ARCHS)
def test_builders(arch):
    shape = (1, 8, 8) if arch == "mlp" else (3, 32, 32)
    for acts in ("real", "binary"):
        net = build(arch, shape, 7, activations=acts, kept=0.2, width=0.125 if arch != "mlp" else 1.0, seed=1)
        assert net(torch.rand(2, *shape)).shape == (2, 7)
        assert [p for p in net.parameters()] == [l.scores for l in biprop_layers(net).values()]


def test_convert_and_its_errors():
    net = convert(SmallCNN(3, 10, width=8), kept=0.25, seed=2, in_shape=(3, 32, 32))
    assert len(biprop_layers(net)) == 4 and all(abs(v - 0.25) < 0.01 for v in kept_fractions(net).values())
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    mlp = convert(MLP(64, 10, (32,)), kept=0.5)
    assert mlp(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(TypeError, match=r"layer '1' is a LayerNorm .* skip=\['1'\]"):
        convert(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)))
    with pytest.raises(ValueError, match="groups=4"):
        convert(nn.Sequential(nn.Conv2d(4, 4, 3, groups=4)))
    with pytest.raises(ValueError, match="kept=1.2 is outside"):
        convert(MLP(), kept=1.2)


def test_bad_kept_fractions():
    for bad in (0, -0.1, 1.01, 40, float("nan"), "half"):
        with pytest.raises(ValueError, match="kept="):
            build("mlp", (1, 8, 8), kept=bad)
    with pytest.raises(ValueError, match=r"kept=0 is outside \(0, 1\]"):
        BipropConv2d(3, 3, kept=0)
    with pytest.raises(ValueError, match="kept=2"):
        set_kept(build("mlp", (1, 8, 8)), 2)
    with pytest.raises(ValueError, match="mode='both'"):
        set_kept(build("mlp", (1, 8, 8)), 0.2, "both")


def test_trainer_bad_settings(digits):
    train, _ = digits
    with pytest.raises(ValueError, match="kept=0.0"):
        MPTTrainer(build("mlp", (1, 8, 8)), train, kept=0.0)
    with pytest.raises(ValueError, match="variant='fast'"):
        MPTTrainer(build("mlp", (1, 8, 8)), train, variant="fast")
    with pytest.raises(ValueError, match="no biprop layers"):
        MPTTrainer(MLP(), train)
    with pytest.raises(ValueError, match="refresh_every=0"):
        MPTTrainer(build("mlp", (1, 8, 8)), train, refresh_every=0)


def test_short_real_training_on_digits(digits):
    train, test = digits
    rows = []
    for variant in ("baseline", "improved"):
        _, row = train_mpt("mlp", train, test, kept=0.1, variant=variant, epochs=6, hidden=(128, 128), seed=0)
        rows.append(row)
        assert row["accuracy"] > 0.85, row
    assert abs(rows[1]["layer_kept"]["total"] - 0.1) < 0.002
    assert rows[0]["layer_kept"]["body.1"] == kept_count(64 * 128, 0.1) / (64 * 128)
    s = sweep_summary(rows)
    assert {r["variant"] for r in s} == {"baseline", "improved"}
    # same seed, same result
    _, again = train_mpt("mlp", train, test, kept=0.1, variant="improved", epochs=6, hidden=(128, 128), seed=0)
    assert again["accuracy"] == rows[1]["accuracy"] and again["layer_kept"] == rows[1]["layer_kept"]


def test_refresh_every_holds_the_mask(digits):
    train, _ = digits
    net = build("mlp", (1, 8, 8), 10, hidden=(32, 32), kept=0.3, seed=0)
    tr = MPTTrainer(net, train, kept=0.3, variant="baseline", refresh_every=5, epochs=1, batch_size=32, progress=False)
    layer = net.body[1]
    masks = []
    for _ in range(6):
        tr.fit(max_steps=tr.step + 1)
        masks.append(layer._cache[2].clone())
    assert all(torch.equal(masks[0], m) for m in masks[:5])        # steps 0-4 use the mask of step 0
    net.eval()
    assert not torch.equal(layer.mask(), masks[0])                  # the scores moved: a fresh mask differs


def test_resume_is_exact(digits, tmp_path):
    train, _ = digits
    def make(**kw):
        net = build("mlp", (1, 8, 8), 10, hidden=(32, 32), kept=0.2, seed=3)
        return MPTTrainer(net, train, kept=0.2, variant="improved", epochs=2, batch_size=128, seed=3, stop_tol=None,
                          progress=False, **kw)
    ref = make().fit()
    make(run=tmp_path / "r").fit(max_steps=7)
    resumed = make(run=tmp_path / "r", resume=True)
    assert resumed.step == 7
    resumed.fit()
    a, b = ref.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stop(digits):
    train, _ = digits
    tr = MPTTrainer(build("mlp", (1, 8, 8), hidden=(32, 32), kept=0.3), train, kept=0.3, variant="improved",
                    stop_tol=0.9, epochs=5, progress=False).fit()
    assert tr.stopped and tr.step < tr.total_steps and len(tr.mask_changes) >= 1


def test_packed_names_still_import_from_mpt():
    import effdata.mpt as mpt
    import effdata.packed as packed
    for name in ("PackedNet", "export_packed", "read_packed", "to_dense", "dense_bytes", "PackedFormatError", "PACKED_FORMAT"):
        assert getattr(mpt, name) is getattr(packed, name)
    with pytest.raises(AttributeError, match="no_such_name"):
        mpt.no_such_name


def test_channels_last_training_matches_the_default_layout(digits):
    "channels_last is a layout change only: the same masks and, up to float rounding, the same scores after a few steps."
    from effdata.models import CIFAR10_MEAN, CIFAR10_STD
    cifar = load_dataset("cifar10").subset(range(64))
    out, masks = [], []
    for cl in (False, True):
        net = build("conv2", (3, 32, 32), 10, kept=0.3, width=0.25, seed=0, mean=CIFAR10_MEAN, std=CIFAR10_STD)
        MPTTrainer(net, cifar, variant="improved", channels_last=cl, epochs=1, batch_size=32, seed=0, augment=False).fit()
        out.append(torch.cat([l.scores.detach().flatten() for l in biprop_layers(net).values()]))
        masks.append(torch.cat([l.mask().flatten() for l in biprop_layers(net.eval()).values()]))
    assert torch.equal(masks[0], masks[1])
    assert torch.allclose(out[0], out[1], atol=1e-4)              # summation order differs: scores agree to ~5e-5
    with pytest.raises(ValueError, match="channels_last='yes'"):
        MPTTrainer(build("mlp", (1, 8, 8), 10), digits[0], channels_last="yes")


def test_mask_explorer_slider_changes_the_figure():
    net = build("mlp", (1, 8, 8), 10, hidden=(40, 30), kept=0.3, seed=0)
    ex = MaskExplorer(net, "body.4")
    n = net.body[4].numel
    assert int(np.sum(ex.hist.data[0].y)) == kept_count(n, 0.3)
    z0 = np.array(ex.map.data[0].z)
    ex.kept.value = 0.8
    assert int(np.sum(ex.hist.data[0].y)) == kept_count(n, 0.8)
    assert int(np.sum(ex.hist.data[0].y) + np.sum(ex.hist.data[1].y)) == n
    assert not np.array_equal(np.array(ex.map.data[0].z), z0)
    assert int(net.body[4].n_keep) == kept_count(n, 0.3)          # the explorer only reads the model
    with pytest.raises(ValueError, match="choose one of body.1, body.4, body.7"):
        MaskExplorer(net, "fc")
