"""DDPM on diffusers: per-sample loss, determinism, bit-exact resume with EMA, learning, weights, errors."""
import numpy as np
import pytest
import torch

from effdata.core import seed_everything
from effdata.data import ImageDataset, Selection, load_dataset, train_transform
from effdata.diffusion import (PRESETS, DDPMTrainer, denoising_loss, draw_noise, ema_update, get_config, image_grid,
                               make_scheduler, make_unet, sample, step_generator)

# a 0.18 M-parameter U-Net on the 8x8 digits: ~0.05 s a step on two CPU cores
TINY = get_config("digits_small", block_out_channels=(16, 32), attention_resolutions=(4,))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _state(m):
    return [v.clone() for v in m.state_dict().values()]


def test_presets_build():
    cfg = get_config("cifar10_paper")
    assert (cfg.block_out_channels, cfg.layers_per_block, cfg.attention_resolutions, cfg.dropout) == ((128, 256, 256, 256), 2, (16,), 0.1)
    assert (cfg.lr, cfg.warmup_steps, cfg.grad_clip, cfg.batch_size, cfg.ema_decay) == (2e-4, 5000, 1.0, 128, 0.9999)
    unet = make_unet(cfg)
    assert abs(sum(p.numel() for p in unet.parameters()) / 1e6 - 35.7) < 0.1   # the paper's 35.7 M
    assert [type(b).__name__ for b in unet.down_blocks] == ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"]
    s = make_scheduler(cfg)
    assert (s.config.num_train_timesteps, s.config.beta_start, s.config.beta_end, s.config.prediction_type) == (1000, 1e-4, 0.02, "epsilon")
    for name, c in PRESETS.items():
        out = make_unet(c)(torch.zeros(2, *c.shape), torch.tensor([0, 999])).sample
        assert out.shape == (2, *c.shape), name


def test_loss_per_sample_and_deterministic():
    torch.manual_seed(0)
    unet, sched = make_unet(TINY), make_scheduler(TINY)
    x0 = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        a = denoising_loss(unet, sched, x0, generator=torch.Generator().manual_seed(3))
        b = denoising_loss(unet, sched, x0, generator=torch.Generator().manual_seed(3))
        c = denoising_loss(unet, sched, x0, generator=torch.Generator().manual_seed(4))
        t, noise = draw_noise(x0, sched, torch.Generator().manual_seed(3))
        d = denoising_loss(unet, sched, x0, t, noise)
    assert a.shape == (5,) and torch.equal(a, b) and torch.equal(a, d) and not torch.equal(a, c)
    assert torch.equal(draw_noise(x0, sched, step_generator(0, 7))[1], draw_noise(x0, sched, step_generator(0, 7))[1])
    # the per-sample loss of image i does not depend on the other images in the batch
    with torch.no_grad():
        e = denoising_loss(unet, sched, x0[:2], t[:2], noise[:2])
    assert torch.allclose(e, a[:2], atol=1e-6)


def test_ema_update_warmup():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        a.weight.zero_(); b.weight.fill_(1.0)
    assert ema_update(a, b, 0.999, 1) == pytest.approx(2 / 11)
    assert torch.allclose(a.weight, torch.full((2, 2), 9 / 11))
    assert ema_update(a, b, 0.9, 10_000) == 0.9


def test_resume_bit_exact_with_ema(digits, tmp_path):
    """Stopped mid-epoch and resumed (with a cosine schedule sized to `steps`): same losses, weights and EMA."""
    kw = dict(steps=40, batch_size=64, schedule="cosine", warmup_steps=5, progress=False)
    full = DDPMTrainer(digits, TINY, run=tmp_path / "a", **kw).fit()
    part = DDPMTrainer(digits, TINY, run=tmp_path / "b", **kw).fit(max_steps=17)
    seed_everything(99)
    rest = DDPMTrainer(digits, TINY, run=tmp_path / "b", resume=True, **kw).fit()
    assert len(full.history) == 40 and part.history + rest.history == full.history
    for name in ("model", "ema"):
        for x, y in zip(_state(full.modules()[name]), _state(rest.modules()[name])):
            assert torch.equal(x, y), name
    assert full.scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)   # cosine reaches 0 at `steps`
    assert (tmp_path / "a" / "checkpoints").is_dir() and any((tmp_path / "a" / "checkpoints").glob("*/ema.safetensors"))


def test_dynamic_pruning_infobatch(digits, tmp_path):
    """InfoBatch on the DDPM trainer: fewer steps for the same epochs, the kept set logged, exact resume mid-epoch,
    and `steps=` refused (dynamic pruning runs whole epochs)."""
    kw = dict(epochs=8, batch_size=256, dynamic="infobatch", progress=False)
    full = DDPMTrainer(digits, TINY, run=tmp_path / "a", **kw).fit()
    n_full = 8 * -(-len(digits) // 256)
    kept = [r["kept"] for r in full.run.metrics() if "kept" in r]
    assert kept[0] == len(digits) and kept[-1] == len(digits) and min(kept[1:7]) < len(digits)
    assert full.step == full.total_steps < n_full
    part = DDPMTrainer(digits, TINY, run=tmp_path / "b", **kw).fit(max_steps=n_full // 2 + 1)
    rest = DDPMTrainer(digits, TINY, run=tmp_path / "b", resume=True, **kw).fit()
    assert part.history + rest.history == full.history
    for x, y in zip(_state(full.ema), _state(rest.ema)):
        assert torch.equal(x, y)
    with pytest.raises(ValueError, match="pass epochs="):
        DDPMTrainer(digits, TINY, steps=10, dynamic="infobatch")


def test_short_run_lowers_loss(digits):
    seed_everything(0)
    tr = DDPMTrainer(digits, "digits_small", steps=250, batch_size=32, progress=False).fit()
    h = np.array(tr.history)
    assert h[-50:].mean() < 0.6 * h[:50].mean(), (h[:50].mean(), h[-50:].mean())
    assert tr.config["steps"] == 250 and tr.config["diffusion"]["name"] == "digits_small"


def test_selection_weights_change_loss(digits):
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(digits), 400, replace=False))
    plain = Selection(idx, len(digits))
    weighted = Selection(idx, len(digits), weights=rng.uniform(0, 2, len(idx)))
    a = DDPMTrainer(digits, TINY, steps=4, batch_size=64, selection=plain, progress=False).fit()
    b = DDPMTrainer(digits, TINY, steps=4, batch_size=64, selection=weighted, progress=False).fit()
    assert a.config["n_train"] == b.config["n_train"] == 400
    assert a.history[0] != b.history[0]
    # weights enter per sample: all-2 weights double the first loss exactly
    c = DDPMTrainer(digits, TINY, steps=1, batch_size=64, progress=False,
                    selection=Selection(idx, len(digits), weights=np.full(len(idx), 2.0))).fit()
    assert c.history[0] == pytest.approx(2 * a.history[0], rel=1e-5)


def test_sampling_deterministic(digits):
    tr = DDPMTrainer(digits, TINY, steps=3, batch_size=64, progress=False).fit()
    a = tr.sample(6, steps=4, seed=1)
    assert a.shape == (6, 1, 8, 8) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, tr.sample(6, steps=4, seed=1))
    assert not torch.equal(a, tr.sample(6, steps=4, seed=2))
    p = sample(tr.ema, TINY, 3, steps=4, method="ddpm", seed=5)
    assert torch.equal(p, sample(tr.ema, make_scheduler(TINY), 3, steps=4, method="ddpm", seed=5))
    img = image_grid(a, 3)
    assert img.size == (3 * 33 + 1, 2 * 33 + 1)


def test_class_conditional(digits):
    cfg = TINY.replace(num_classes=10)
    tr = DDPMTrainer(digits, cfg, steps=2, batch_size=64, progress=False).fit()
    assert tr.model.config.num_class_embeds == 10
    assert tr.sample(4, steps=2, labels=[0, 1, 2, 3]).shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match="pass labels="):
        tr.sample(4, steps=2)
    with pytest.raises(ValueError, match="num_classes=10"):
        DDPMTrainer(digits, TINY.replace(num_classes=3), steps=1)


def test_cifar_real_data(data_root):
    """CIFAR-10 with the small preset: flips replace the crop augmentation; a few steps run; mnist config rejected."""
    cifar = load_dataset("cifar10", root=data_root, transform=train_transform("cifar10"))
    sel = Selection(np.arange(0, 256), len(cifar), info={"method": "first 256"})
    cfg = get_config("cifar10_small", block_out_channels=(8, 16, 16))
    tr = DDPMTrainer(cifar, cfg, steps=2, batch_size=32, selection=sel, progress=False).fit()
    assert type(tr.data.transform).__name__ == "RandomHorizontalFlip" and tr.config["augment"] is True
    assert tr.config["selection"] == {"method": "first 256"} and len(tr.history) == 2
    assert cifar.transform is not None and type(cifar.transform).__name__ == "Compose"   # the caller's dataset is untouched
    with pytest.raises(ValueError, match=r"shape \(3, 32, 32\) but config 'mnist_small'.*config='cifar10_small'"):
        DDPMTrainer(cifar, "mnist_small")
    mnist = load_dataset("mnist", root=data_root).subset(range(64))
    tr = DDPMTrainer(mnist, get_config("mnist_small", block_out_channels=(8, 16, 16)), steps=1, batch_size=32, progress=False).fit()
    assert tr.config["augment"] is False and tr.data.transform is None


def test_errors(digits):
    with pytest.raises(ValueError, match="config='cifar' is not a diffusion preset.*digits_small"):
        get_config("cifar")
    with pytest.raises(ValueError, match="config='nope' is not a diffusion preset"):
        DDPMTrainer(digits, "nope")
    with pytest.raises(ValueError, match=r"shape \(1, 8, 8\) but config 'cifar10_small' builds a U-Net for \(3, 32, 32\).*digits_small"):
        DDPMTrainer(digits, "cifar10_small")
    with pytest.raises(ValueError, match="U-Net is built for"):
        DDPMTrainer(digits, "digits_small", unet=make_unet("mnist_small"))
    with pytest.raises(ValueError, match="steps=-3"):
        DDPMTrainer(digits, TINY, steps=-3)
    with pytest.raises(TypeError, match="pass the dataset first"):
        DDPMTrainer(make_unet(TINY), digits)
    unet = make_unet(TINY)
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match=f"n={bad!r}"):
            sample(unet, TINY, bad)
    with pytest.raises(ValueError, match="method='euler'.*'ddim'"):
        sample(unet, TINY, 2, method="euler")
    with pytest.raises(ValueError, match="steps=2000"):
        sample(unet, TINY, 2, steps=2000)
    with pytest.raises(ValueError, match="U-Net is built for"):
        denoising_loss(unet, make_scheduler(TINY), torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="learning_rate"):
        get_config("digits_small", learning_rate=1.0)
    with pytest.raises(ValueError, match="norm_num_groups"):
        get_config("digits_small", block_out_channels=(12, 24))
