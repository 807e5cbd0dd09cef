"""effdata.red: DnCNN, adversarial pairs, augmentation, the RED objective and trainer, evaluation, explorer;
and the image/attribution metrics of effdata.metrics it relies on."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from effdata.attacks import FGSM, PGD
from effdata.core import seed_everything
from effdata.metrics import attribution_maps, psnr, ssim, topk_iou, topk_mask
from effdata.red import (AUGMENTATIONS, SETTINGS, AdvPairs, DnCNN, REDExplorer, REDTrainer, augment_pair, build_pairs,
                         check_classifier, check_pair, evaluate_red, get_setting, load_denoiser, load_victim, red_objective,
                         red_outputs, summarize)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def mnist(data_root):
    from effdata.data import load_dataset
    return load_dataset("mnist", "test", root=data_root)


@pytest.fixture(scope="module")
def lenet(data_root):
    return load_victim("mnist_lenet5", root=data_root)


@pytest.fixture(scope="module")
def pairs(mnist, lenet, tmp_path_factory):
    return build_pairs(mnist, {"lenet": lenet}, {"fgsm": FGSM(0.3), "pgd": PGD(0.3, 0.05, 5, seed=0)}, limit=64,
                       cache=tmp_path_factory.mktemp("pairs"))


# ---------------------------------------------------------------- DnCNN
@pytest.mark.parametrize("depth,width,channels", [(17, 64, 3), (8, 32, 1), (2, 4, 3)])
def test_dncnn_identity_at_init(depth, width, channels):
    net = DnCNN(channels, depth, width)
    x = torch.rand(3, channels, 20, 24)
    with torch.no_grad():
        assert torch.equal(net.train()(x), x) and torch.equal(net.eval()(x), x)
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == depth
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == depth - 2
    assert net.config == dict(channels=channels, depth=depth, width=width)


def test_dncnn_is_residual_after_a_step():
    seed_everything(0)
    net = DnCNN(1, 4, 8)
    x = torch.rand(4, 1, 16, 16)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    (net(x) - 0.5).abs().mean().backward(); opt.step()
    with torch.no_grad(): assert torch.allclose(net(x), x - net.residual(x)) and not torch.equal(net(x), x)


@pytest.mark.parametrize("kw,msg", [(dict(depth=1), "depth=1"), (dict(width=0), "width=0"), (dict(channels=2.0), "channels=2.0")])
def test_dncnn_bad_config(kw, msg):
    with pytest.raises(ValueError, match=msg.replace(".", r"\.")): DnCNN(**kw)


def test_dncnn_wrong_channels():
    with pytest.raises(ValueError, match="build it with channels=1"): DnCNN(3, 3, 4)(torch.rand(2, 1, 8, 8))


# ---------------------------------------------------------------- metrics
def test_psnr_ssim_agree_with_torchmetrics():
    from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    g = torch.Generator().manual_seed(0)
    a = torch.rand(5, 3, 32, 32, generator=g, dtype=torch.float64)
    b = (a + 0.03 * torch.randn(a.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    for x, y, r in ((b, a, 1.0), (a[:, :1, :28, :28], b[:, :1, :28, :28], 1.0),
                    ((b - a).clamp(-0.05, 0.05), 0.05 * torch.rand(a.shape, generator=g, dtype=torch.float64), 0.1)):
        assert torch.allclose(psnr(x, y, r), tm_psnr(x, y, data_range=r, reduction="none", dim=(1, 2, 3)), atol=1e-5)
        assert torch.allclose(ssim(x, y, r), tm_ssim(x, y, data_range=r, reduction="none"), atol=1e-6)
    assert torch.isinf(psnr(a, a)).all() and torch.allclose(ssim(a, a), torch.ones(5, dtype=torch.float64))
    # worse images score lower
    c = (a + 0.1 * torch.randn(a.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert (psnr(c, a) < psnr(b, a)).all() and (ssim(c, a) < ssim(b, a)).all()


def test_metric_bad_input():
    a = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"pred has shape \(2, 3, 16, 16\) but target has \(2, 1, 16, 16\)"): psnr(a, a[:, :1])
    with pytest.raises(ValueError, match="data_range=-1"): ssim(a, a, data_range=-1)
    with pytest.raises(ValueError, match="kernel_size=33 is too large"): ssim(a, a, kernel_size=33)
    with pytest.raises(ValueError, match="k=0 is outside"): topk_iou(a[:, 0], a[:, 0], k=0)


def test_topk_iou_identical_and_disjoint():
    g = torch.Generator().manual_seed(1)
    m = torch.rand(4, 12, 12, generator=g)
    assert torch.equal(topk_iou(m, m, 0.1), torch.ones(4, dtype=torch.float64))
    assert torch.equal(topk_iou(m, m[:, None] * 3 + 1, 0.25), torch.ones(4, dtype=torch.float64))   # (B,1,H,W) and monotone maps
    a = torch.zeros(4, 12, 12); a[:, :6] = 1 + torch.rand(4, 6, 12, generator=g)
    b = torch.zeros(4, 12, 12); b[:, 6:] = 1 + torch.rand(4, 6, 12, generator=g)
    assert torch.equal(topk_iou(a, b, 0.3), torch.zeros(4, dtype=torch.float64))
    assert topk_mask(a, 0.3).flatten(1).sum(1).tolist() == [math.ceil(0.3 * 144)] * 4
    half = torch.arange(144.).view(1, 12, 12)
    assert topk_iou(half, half.roll(7), 0.1).item() == pytest.approx(8 / 22)       # 15 top pixels, 8 shared


def test_attribution_maps_on_real_model(mnist, lenet):
    x = mnist.images[:6].float() / 255
    for method in ("gradcam", "ig"):
        a = attribution_maps(lenet, x, method, ig_steps=8)
        assert a.shape == (6, 28, 28) and (a >= 0).all() and a.flatten(1).amax(1).gt(0).all()
        assert torch.allclose(attribution_maps(lenet, x[2:3], method, ig_steps=8), a[2:3], atol=1e-5)
    with pytest.raises(ValueError, match="method='saliency'"): attribution_maps(lenet, x, "saliency")


# ---------------------------------------------------------------- pairs
def test_build_pairs_contents_and_cache(pairs, mnist, lenet, tmp_path):
    assert len(pairs) == 128 and pairs.cells() == [("fgsm", "lenet"), ("pgd", "lenet")]
    assert pairs.clean.dtype == torch.uint8 and pairs.adv.dtype == torch.float32
    assert torch.equal(pairs.clean[:64], mnist.images[:64]) and torch.equal(pairs.targets[64:], mnist.targets[:64])
    assert (pairs.delta.abs().amax((1, 2, 3)) <= 0.3 + 1e-6).all() and pairs.eps == [0.3, 0.3]
    with torch.no_grad(): assert (lenet(pairs.adv).argmax(1) != pairs.targets).float().mean() > 0.5
    kw = dict(limit=16, cache=tmp_path)
    a = build_pairs(mnist, {"lenet": lenet}, {"fgsm": FGSM(0.2)}, **kw)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and a.info["key"] in files[0].name
    b = build_pairs(mnist, {"lenet": lenet}, {"fgsm": FGSM(0.2)}, **kw)
    assert torch.equal(a.adv, b.adv) and len(list(tmp_path.iterdir())) == 1
    c = build_pairs(mnist, {"lenet": lenet}, {"fgsm": FGSM(0.1)}, **kw)       # another budget: another entry
    assert c.info["key"] != a.info["key"] and len(list(tmp_path.iterdir())) == 2
    back = AdvPairs.load(files[0])
    assert torch.equal(back.adv, a.adv) and back.attacks == a.attacks and back.classes == a.classes


def test_build_pairs_is_deterministic(mnist, lenet):
    kw = dict(limit=8)
    a = build_pairs(mnist, {"v": lenet}, {"pgd": PGD(0.3, 0.05, 3)}, seed=5, **kw)     # unseeded attack: seeded by build_pairs
    b = build_pairs(mnist, {"v": lenet}, {"pgd": PGD(0.3, 0.05, 3)}, seed=5, **kw)
    assert torch.equal(a.adv, b.adv)


def test_pairs_concat_and_cells(pairs):
    other = pairs.cell("pgd").subset(range(10))
    other.victims = ["other"]
    both = AdvPairs.concat([pairs, other])
    assert both.cells() == [("fgsm", "lenet"), ("pgd", "lenet"), ("pgd", "other")] and len(both) == 138
    assert torch.equal(both.cell("pgd", "other").adv, other.adv)
    both.adv[-3:] = both.x[-3:]                            # AutoAttack leaves images it need not attack unchanged
    assert len(both.perturbed()) == 135 and len(pairs.perturbed()) == len(pairs)


# ---------------------------------------------------------------- augmentation and objective
@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augmentation_keeps_pairs_aligned(name, pairs):
    x, xa = pairs.x[:12], pairs.adv[:12]
    ta, tb = augment_pair(x, xa, name, torch.Generator().manual_seed(11))
    td, td2 = augment_pair(xa - x, xa - x, name, torch.Generator().manual_seed(11))
    assert torch.allclose(tb - ta, td, atol=1e-5) and torch.equal(td, td2)        # T(x') - T(x) = T(x' - x)
    assert ta.shape == x.shape and not torch.equal(ta, x)
    ta2, tb2 = augment_pair(x, xa, name, torch.Generator().manual_seed(11))
    assert torch.equal(ta, ta2) and torch.equal(tb, tb2)


class LeftQuarter(nn.Module):
    "Class 1 iff the left quarter of the image is brighter than `level`: a flip can change its prediction."
    def __init__(self, level): super().__init__(); self.level = level
    def forward(self, x):
        d = x[..., : x.shape[-1] // 4].mean((1, 2, 3)) - self.level
        return torch.stack([-d, d], 1) * 5


def test_filter_drops_pairs_whose_prediction_changed(pairs):
    x, xa = pairs.x[:32], pairs.adv[:32]
    f = LeftQuarter(float(x[..., :7].mean()))
    with torch.no_grad():
        same = (f(x).argmax(1) == f(x.flip(-1)).argmax(1)) & (f(xa).argmax(1) == f(xa.flip(-1)).argmax(1))
    assert 0 < same.sum() < 32
    d = DnCNN(1, 3, 4)
    l_f, logs = red_objective(d, f, x, xa, gamma=1.0, lam=1.0, augment=("flip",))
    l_nf, _ = red_objective(d, f, x, xa, gamma=1.0, lam=1.0, augment=("flip",), filter=False)
    assert logs["kept"] == pytest.approx(same.float().mean().item())
    assert torch.equal(torch.isclose(l_f, l_nf), same)
    # by hand: each pair's loss is the mean over its two copies; a dropped flipped copy adds its pixel loss only
    l1 = lambda a, b: (a - b).abs().flatten(1).sum(1)          # the default l1='sum': the norm per image
    ce = lambda z, y: nn.functional.cross_entropy(z, y, reduction="none")
    xf, xaf = x.flip(-1), xa.flip(-1)
    with torch.no_grad():
        orig = l1(xa, x) + ce(f(xa), f(x).argmax(1)) + ce(f(x), f(xa).argmax(1))      # identity D: x + x' - D(x') = x
        flip = l1(xaf, xf) + same * (ce(f(xaf), f(xf).argmax(1)) + ce(f(xf), f(xaf).argmax(1)))
    assert torch.allclose(l_f.detach(), (orig + flip) / 2, rtol=1e-5, atol=1e-4)


def test_objective_settings(pairs, lenet):
    x, xa = pairs.x[:8], pairs.adv[:8]
    d = DnCNN(1, 3, 4)
    _, lg = red_objective(d, lenet, x, xa, **{k: v for k, v in SETTINGS["DO"].items()})
    assert sorted(lg) == ["l1", "l1_pixel"] and lg["l1_pixel"] == pytest.approx((xa - x).abs().mean().item(), rel=1e-5)
    assert lg["l1"] == pytest.approx((xa - x).abs().flatten(1).sum(1).mean().item(), rel=1e-5)    # default: the norm per image
    _, lg = red_objective(d, lenet, x, xa, **SETTINGS["DS"])
    assert "ce_benign" in lg and "ce_adv" not in lg
    _, lg = red_objective(d, lenet, x, xa, **SETTINGS["CDD-RED"], generator=torch.Generator().manual_seed(0))
    assert {"ce_benign", "ce_adv", "kept"} <= set(lg)
    assert get_setting("cdd-red")["augment"] == ("crop_pad", "cutmix")
    assert {s["l1"] for s in SETTINGS.values()} == {"sum"}


def test_l1_reduction(pairs, lenet, tmp_path):
    "'sum' and 'mean' differ by exactly the pixel count; DO's optimum (and its Adam trajectory) does not move; bad value fails."
    x, xa = pairs.x[:8], pairs.adv[:8]
    npix = x[0].numel()                                        # 784 on MNIST
    seed_everything(0); d = DnCNN(1, 3, 4)
    with torch.no_grad(): d.net[-1].weight.normal_(0, 0.05)
    for gamma, lam in ((0, 0), (0.5, 0.5)):
        ls, gs = red_objective(d, lenet, x, xa, gamma=gamma, lam=lam, l1="sum")
        lm, gm = red_objective(d, lenet, x, xa, gamma=gamma, lam=lam, l1="mean")
        assert gs["l1"] == pytest.approx(npix * gm["l1"], rel=1e-5) and gs["l1_pixel"] == pytest.approx(gm["l1_pixel"])
        with torch.no_grad(): err = (d(xa) - x).abs().flatten(1)
        assert torch.allclose(ls - lm, err.sum(1) - err.mean(1), rtol=1e-5, atol=1e-3)   # only the pixel term moved
    do_s = red_objective(d, lenet, x, xa, gamma=0, lam=0, l1="sum")[0]
    do_m = red_objective(d, lenet, x, xa, gamma=0, lam=0, l1="mean")[0]
    assert torch.allclose(do_s, npix * do_m, rtol=1e-5)
    flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])
    seed_everything(0); w0 = flat(DnCNN(1, 3, 8))
    def trained(l1):
        seed_everything(0)
        tr = REDTrainer(DnCNN(1, 3, 8), pairs, lenet, setting="DO", l1=l1, batch_size=16, seed=0, progress=False,
                        run=tmp_path / l1).fit(max_steps=5)
        return flat(tr.model)
    ws, wm = trained("sum"), trained("mean")
    # Adam normalises the gradient's scale: the same DO updates under either reduction (up to Adam's eps)
    assert (ws - wm).norm() < 0.02 * (ws - w0).norm()
    assert load_denoiser(tmp_path / "sum").red["l1"] == "sum" and load_denoiser(tmp_path / "mean").red["l1"] == "mean"
    with pytest.raises(ValueError, match="l1='l2': choose 'sum'"): red_objective(d, lenet, x, xa, l1="l2")
    with pytest.raises(ValueError, match="l1='avg': choose 'sum'"): REDTrainer(DnCNN(1, 3, 4), pairs, lenet, l1="avg")
    with pytest.warns(UserWarning, match="l1='sum' with SGD"): REDTrainer(DnCNN(1, 3, 4), pairs, lenet, optimizer="sgd")


# ---------------------------------------------------------------- bad input
def test_bad_input(pairs, lenet, mnist, tmp_path):
    x, xa = pairs.x[:4], pairs.adv[:4]
    with pytest.raises(ValueError, match=r"x_adv has values in \[0, 255\]"): check_pair(x, xa * 255)
    with pytest.raises(ValueError, match=r"x has values in \[-1"): check_pair(x * 2 - 1, xa)
    with pytest.raises(ValueError, match=r"x_adv has shape \(4, 1, 20, 20\) but x has \(4, 1, 28, 28\)"):
        check_pair(x, xa[..., :20, :20])
    with pytest.raises(TypeError, match="divide uint8 images by 255"): red_objective(DnCNN(1, 3, 4), lenet, pairs.clean[:4], xa)
    with pytest.raises(ValueError, match=r"x_adv has shape \(3, 1, 28, 28\) but x has \(4, 1, 28, 28\)"):
        red_outputs(DnCNN(1, 3, 4), x, xa[:3])
    from effdata.models import LeNet5
    wrong = LeNet5(num_classes=5)
    for fn in (lambda: REDTrainer(DnCNN(1, 3, 4), pairs, wrong), lambda: evaluate_red(DnCNN(1, 3, 4), pairs, wrong),
               lambda: build_pairs(mnist, {"w": wrong}, ["fgsm"], limit=4),
               lambda: REDExplorer(pairs, wrong, {"a": DnCNN(1, 3, 4)})):
        with pytest.raises(ValueError, match="outputs shape \\(5,\\) per image but mnist.* has 10 classes"): fn()
    with pytest.raises(ValueError, match="attacks: unknown attack 'deepfool': choose one of fgsm"):
        build_pairs(mnist, {"v": lenet}, ["fgsm", "deepfool"], limit=4)
    with pytest.raises(ValueError, match="attack='cw' is not in these pairs: choose one of fgsm, pgd"): pairs.cell("cw")
    with pytest.raises(ValueError, match="setting='red'"): REDTrainer(DnCNN(1, 3, 4), pairs, lenet, setting="red")
    with pytest.raises(ValueError, match="augment holds 'mixup'"): REDTrainer(DnCNN(1, 3, 4), pairs, lenet, augment=["mixup"])
    with pytest.raises(ValueError, match=r"adv has values in"):
        AdvPairs(pairs.clean[:2], pairs.adv[:2] + 2, pairs.targets[:2], pairs.attack[:2], pairs.victim[:2], pairs.source[:2],
                 pairs.attacks, pairs.victims, pairs.eps, pairs.classes)
    with pytest.raises(ValueError, match="limit=0"): build_pairs(mnist, {"v": lenet}, ["fgsm"], limit=0)
    junk = tmp_path / "junk.safetensors"; junk.write_bytes(b"junk")
    with pytest.raises(ValueError, match="is not a pairs file written by AdvPairs.save"): AdvPairs.load(junk)
    with pytest.raises(FileNotFoundError, match="build the pairs first"): AdvPairs.load(tmp_path / "missing.safetensors")


# ---------------------------------------------------------------- training and evaluation end to end
def _train(pairs, f, setting, steps, run=None, resume=False, seed=0):
    seed_everything(seed)
    return REDTrainer(DnCNN(1, 4, 12), pairs, f, setting=setting, batch_size=16, lr=3e-3, seed=seed, run=run, resume=resume,
                      progress=False, epochs=2).fit(max_steps=steps)


def test_end_to_end_train_and_evaluate(pairs, lenet, tmp_path):
    trs = {s: _train(pairs, lenet, s, 12, run=tmp_path / s) for s in SETTINGS}
    for s, tr in trs.items():
        assert np.mean(tr.history[-3:]) < np.mean(tr.history[:3]), (s, tr.history)
    dens = {s: load_denoiser(tmp_path / s) for s in SETTINGS}
    with torch.no_grad(): assert torch.allclose(dens["DO"](pairs.adv[:4]), trs["DO"].model.eval()(pairs.adv[:4]), atol=1e-6)
    rows = evaluate_red({**dens, "identity": DnCNN(1, 3, 4)}, pairs, lenet, ig_steps=4, attr_limit=8)
    assert len(rows) == 4 * 2 and {r["setting"] for r in rows} == {*SETTINGS, "identity"}
    for r in rows:
        assert 0 <= r["pa_benign"] <= 1 and 0 <= r["pa_adv"] <= 1 and -1 <= r["ssim"] <= 1
        assert 0 <= r["iou_gradcam"] <= 1 and 0 <= r["iou_ig"] <= 1 and math.isfinite(r["psnr"]) and r["n_attr"] == 8
    ident = [r for r in rows if r["setting"] == "identity"]
    for r in ident: assert r["psnr"] == pytest.approx(r["psnr_identity"], abs=1e-6)
    do = [r for r in rows if r["setting"] == "DO"]
    assert all(d["psnr"] > i["psnr"] for d, i in zip(do, ident))          # 12 steps of pixel loss already beat x' itself
    means = {m["setting"]: m for m in summarize(rows)}
    assert means["DO"]["cells"] == 2 and means["DO"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in do]))


def test_trainer_resume_is_exact(pairs, lenet, tmp_path):
    full = _train(pairs, lenet, "CDD-RED", 8)
    _train(pairs, lenet, "CDD-RED", 4, run=tmp_path / "r")
    resumed = _train(pairs, lenet, "CDD-RED", 8, run=tmp_path / "r", resume=True)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k
    assert resumed.classifier is not lenet and not any(p.requires_grad for p in resumed.classifier.parameters())
    assert all(p.requires_grad for p in lenet.parameters()) and not lenet.training


def test_explorer_without_browser(pairs, lenet):
    from effdata.viz import to_uint8_hwc
    seed_everything(0)
    dens = {"DO": _train(pairs, lenet, "DO", 3).model.eval(), "CDD-RED": _train(pairs, lenet, "CDD-RED", 3).model.eval()}
    ex = REDExplorer(pairs, lenet, dens, ig_steps=4)
    assert ex.denoiser.value == "CDD-RED" and len(ex.fig.data) == 10
    assert np.array_equal(ex.fig.data[0].z, to_uint8_hwc(pairs.x[:1])[0])
    ex.image.value = 3
    assert np.array_equal(ex.fig.data[1].z, to_uint8_hwc(pairs.adv[3:4])[0])
    before = np.array(ex.fig.data[2].z)
    ex.denoiser.value = "DO"
    with torch.no_grad(): want = to_uint8_hwc(dens["DO"](pairs.adv[3:4]).clamp(0, 1))[0]
    assert np.array_equal(ex.fig.data[2].z, want) and not np.array_equal(before, want)
    gc = np.array(ex.fig.data[5].z)
    ex.method.value = "ig"
    assert not np.allclose(np.array(ex.fig.data[5].z), gc) and "Integrated Gradients" in ex.fig.layout.title.text
    ex.attack.value = 1
    assert np.array_equal(ex.fig.data[1].z, to_uint8_hwc(pairs.cell("pgd").adv[3:4])[0])
    assert "pgd vs lenet" in ex.fig.layout.title.text
    assert f"IoU {ex.last['iou']['adv']:.2f}" in ex.fig.layout.annotations[8].text
    assert len(ex.figure().data) == 10
