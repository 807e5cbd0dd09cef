"""effdata.latent: the VAE, the latent cache, DiT/U-Net latent DMs on DDPMTrainer, CFG sampling, DRO on latents,
loading diffusers folders by path (a tiny random DiT pipeline stands in for a Stable-Diffusion-scale one), the
`--latent` command line, and bad input."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from effdata.data import ImageDataset, Selection, load_dataset
from effdata.latent import (LatentDDPMTrainer, LatentSamplesExplorer, decode, encode_latents, fit_vae,
                            get_latent_config, latent_reweight, latent_sample, latents_path, load_denoiser,
                            load_latents, load_pipeline, load_vae, make_denoiser, null_label, to_inputs)

CFG = get_latent_config("digits_dit", dit_layers=1, dit_heads=2, dit_head_dim=8, warmup_steps=2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("latent")
    digits = load_dataset("digits")
    vae = fit_vae(digits, CFG, steps=8, save=tmp / "vae", progress=False)
    z = encode_latents(vae, digits, cache=tmp / "cache")
    return tmp, digits, vae, z


def test_vae_folder_and_scale(setup):
    tmp, digits, vae, z = setup
    back = load_vae(tmp / "vae")
    assert back.config.scaling_factor == pytest.approx(vae.config.scaling_factor)
    assert to_inputs(z, vae).std().item() == pytest.approx(1.0, abs=0.05)
    assert decode(back, to_inputs(z[:2], vae)).shape == (2, 1, 8, 8)


def test_cache_roundtrip_and_other_dataset(setup):
    tmp, digits, vae, z = setup
    f = latents_path(vae, digits, tmp / "cache")
    assert f.exists() and torch.equal(load_latents(f, digits), z)
    with pytest.raises(ValueError, match=r"were made for digits \(train, 1437 samples.*for this dataset with encode_latents"):
        load_latents(f, digits.subset(torch.arange(50)))
    with pytest.raises(ValueError, match="were made for"):                                   # same size, other pixels
        load_latents(f, ImageDataset(digits.images.flip(0), digits.targets.flip(0), digits.classes, name="digits"))


def test_train_resume_deterministic_and_cfg(setup):
    tmp, digits, vae, z = setup
    a = LatentDDPMTrainer(digits, vae, CFG, latents=z, steps=6, run=tmp / "a", progress=False).fit()
    part = LatentDDPMTrainer(digits, vae, CFG, latents=z, steps=6, run=tmp / "b", progress=False).fit(max_steps=3)
    b = LatentDDPMTrainer(digits, vae, CFG, latents=z, steps=6, run=tmp / "b", resume=True, progress=False).fit()
    for p, q in zip(a.ema.parameters(), b.ema.parameters()): torch.testing.assert_close(p, q)
    x = a.sample(6, steps=3, seed=1)
    assert x.shape == (6, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, a.sample(6, steps=3, seed=1))
    assert not torch.equal(x, a.sample(6, steps=3, seed=1, guidance_scale=3.0))
    assert a.config["latent"]["name"] == "digits_dit" and a.config["label_dropout"] == 0.1


def test_unet_denoiser_and_selection_weights(setup):
    tmp, digits, vae, z = setup
    cfg = CFG.replace(denoiser="unet", unet_channels=(16, 32))
    sel = Selection(np.arange(0, len(digits), 4), len(digits), np.linspace(0.5, 1.5, len(range(0, len(digits), 4))))
    tr = LatentDDPMTrainer(digits, vae, cfg, latents=z, selection=sel, steps=3, progress=False).fit()
    assert type(tr.model).__name__ == "UNet2DModel" and null_label(tr.model) == 10
    assert len(tr.data) == len(sel) and torch.allclose(tr.inputs, to_inputs(z, vae)[torch.as_tensor(sel.indices)])
    assert tr.sample(2, steps=2, guidance_scale=2.0).shape == (2, 1, 8, 8)


def test_dro_on_latents(setup):
    tmp, digits, vae, z = setup
    LatentDDPMTrainer(digits, vae, CFG, latents=z, steps=4, run=tmp / "ref", progress=False).fit()
    core = Selection(np.arange(0, len(digits), 3), digits)
    cw = latent_reweight(digits, vae, tmp / "ref", CFG, selection=core, latents=z, steps=5, batch_size=32, progress=False)
    assert cw.trajectory.shape == (5, 10) and cw.weights.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="does not match config.*dit_layers: reference 1 vs proxy 2"):  # another architecture
        latent_reweight(digits, vae, tmp / "ref", CFG.replace(dit_layers=2), latents=z, steps=2, progress=False)


def test_pipeline_folder_by_path(tmp_path):
    "A Stable-Diffusion-scale pipeline is loaded the same way; a tiny random one in the DiT layout stands in."
    from diffusers import AutoencoderKL, DDPMScheduler, DiTTransformer2DModel
    torch.manual_seed(0)
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                  norm_num_groups=4, sample_size=16).save_pretrained(tmp_path / "vae")
    DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, num_layers=1,
                          sample_size=8, patch_size=2, num_embeds_ada_norm=5).save_pretrained(tmp_path / "transformer")
    DDPMScheduler().save_pretrained(tmp_path / "scheduler")
    vae, den, sched = load_pipeline(tmp_path, "ddim")
    x = latent_sample(den, vae, sched, 3, labels=[0, 1, 4], steps=2, guidance_scale=2.0)
    assert x.shape == (3, 3, 16, 16)
    assert all(m.dropout_prob == 0 for m in den.modules() if type(m).__name__ == "LabelEmbedding")
    with pytest.raises(FileNotFoundError, match="no such folder"): load_vae(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds a DiTTransformer2DModel, not a AutoencoderKL"): load_vae(tmp_path / "transformer")
    with pytest.raises(FileNotFoundError, match="holds no config.json"): load_denoiser(tmp_path / "scheduler")


def test_bad_input(setup):
    tmp, digits, vae, z = setup
    with pytest.raises(ValueError, match=r"latents have shape \(3, 4, 4\) but this VAE makes \(4, 4, 4\)"):
        LatentDDPMTrainer(digits, vae, CFG, latents=z[:, :3], steps=1)
    with pytest.raises(ValueError, match="latents has 5 rows"):
        LatentDDPMTrainer(digits, vae, CFG, latents=z[:5], steps=1)
    with pytest.raises(FileNotFoundError, match="vae='.*nowhere'.*no such folder"):
        LatentDDPMTrainer(digits, tmp / "nowhere", CFG, steps=1)
    with pytest.raises(ValueError, match="cannot be cut into patches of 3"):
        make_denoiser(CFG.replace(patch_size=3), (4, 4, 4), 10)
    with pytest.raises(ValueError, match="not a latent preset"): get_latent_config("sd-v1-5")
    with pytest.raises(ValueError, match="images have 3 channels but the VAE takes 1"):
        encode_latents(vae, ImageDataset(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4), digits.classes))
    from effdata.diffusion import sample
    with pytest.raises(ValueError, match="guidance_scale=2.0 needs"):
        sample(make_denoiser(CFG, (4, 4, 4), 10), "digits_small", 2, labels=0, guidance_scale=2.0)
    with pytest.raises(ValueError, match="labels 0..12"):
        LatentSamplesExplorer({"a": (torch.zeros(2, 1, 8, 8), [0, 12])}, digits.classes)


def _cli(*args, cwd):
    exe = Path(sys.executable).parent / "effdata"
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_cli_latent(setup, tmp_path):
    tmp, digits, vae, z = setup
    r = _cli("diffusion", "--latent", "digits_dit", "--vae", tmp / "vae", "--steps", 3, "--samples", 20, "--sample-steps", 2,
             "--run", "runs/ref", "--quiet", "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "latent digits_dit" in r.stdout and (tmp_path / "runs/ref/figures/samples.png").exists()
    r = _cli("reweight", "--latent", "digits_dit", "--vae", tmp / "vae", "--reference", "runs/ref", "--steps", 3, "--run",
             "runs/rw", "--quiet", "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "runs/rw/class_weights.json").read_text())["info"]["config"] == "digits_dit:latent"
    for args, msg in [(("diffusion", "--latent", "digits_dit", "--vae", "nowhere", "--steps", 1), "--vae nowhere: no such folder"),
                      (("reweight", "--latent", "digits_dit", "--reference", "runs/rw", "--steps", 1), "--vae is missing"),
                      (("diffusion", "--latent", "sd15"), "invalid choice: 'sd15'")]:
        r = _cli(*args, "--run", "runs/bad", cwd=tmp_path)
        assert r.returncode in (1, 2) and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
