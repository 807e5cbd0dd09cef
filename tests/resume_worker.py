"""One small training run of an effdata trainer, for tests/test_resume.py: run it, kill it, resume it.

    python tests/resume_worker.py KIND RUN_DIR [--resume] [--kill-in-save N] [--kill-in-log N]

KIND is ddpm, dro, at, mpt or red. `--kill-in-save N` SIGKILLs the process in the middle of its N-th checkpoint
write (weights written, `state.pt` half written); `--kill-in-log N` in the middle of its N-th `metrics.jsonl` line.
At the end the trained weights go to RUN_DIR/final.safetensors."""
import argparse
import os
import signal
import sys

import torch

torch.set_num_threads(1)

from effdata import core  # noqa: E402
from effdata.core import seed_everything  # noqa: E402
from effdata.data import load_dataset  # noqa: E402


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def arm_kills(in_save: int | None, in_log: int | None):
    "Patch the writers so that the process kills itself half-way through a checkpoint or a log line."
    if in_save:
        calls = {"n": 0}
        real = torch.save
        def save(obj, f, *a, **k):
            calls["n"] += 1
            if calls["n"] == in_save and str(f).endswith("state.pt"):
                import io
                buf = io.BytesIO(); real(obj, buf, *a, **k)
                with open(f, "wb") as fh: fh.write(buf.getvalue()[: len(buf.getvalue()) // 2]); fh.flush(); os.fsync(fh.fileno())
                _die()
            return real(obj, f, *a, **k)
        torch.save = save
    if in_log:
        n = {"n": 0}
        real_log = core.Run.log
        def log(self, **metrics):
            n["n"] += 1
            if n["n"] == in_log:
                import json
                line = json.dumps(json.loads(json.dumps(metrics, default=core._json_default)))
                with open(self.metrics_path, "a") as f: f.write(line[: len(line) // 2]); f.flush(); os.fsync(f.fileno())
                _die()
            return real_log(self, **metrics)
        core.Run.log = log


def build(kind: str, run: str, resume: bool):
    "The trainer of `kind`, small enough for a test (digits, tiny models, a few dozen steps)."
    digits = load_dataset("digits")
    common = dict(run=run, resume=resume, progress=False, seed=0)
    if kind in ("ddpm", "dro"):
        from effdata.diffusion import DDPMTrainer, get_config, make_unet
        cfg = get_config("digits_small", block_out_channels=(8, 16), attention_resolutions=(), norm_num_groups=8,
                         layers_per_block=1, warmup_steps=5)
        data = digits.subset(range(128))
        if kind == "ddpm":
            return DDPMTrainer(data, cfg, steps=12, batch_size=32, ckpt_every=3, log_every=2, **common)
        from effdata.reweighting import DROTrainer
        seed_everything(1); ref = make_unet(cfg)
        return DROTrainer(data, ref, cfg, steps=12, batch_size=32, ckpt_every=3, log_every=2, **common)
    if kind == "at":
        from effdata.at import ATTrainer
        from effdata.models import SmallCNN
        return ATTrainer(SmallCNN(1, 10, width=8), digits.subset(range(240)), objective="fast", eps=0.1, subset="random",
                         fraction=0.5, every=1, warm=1, epochs=4, batch_size=40, lr=0.05, augment=False, log_every=1, **common)
    if kind == "mpt":
        from effdata.mpt import MPTTrainer, build as mpt_build
        model = mpt_build("mlp", digits.shape, 10, kept=0.3, hidden=(32,), seed=0)
        return MPTTrainer(model, digits.subset(range(320)), kept=0.3, variant="improved", stop_tol=None, epochs=4,
                          batch_size=64, lr=0.1, augment=False, log_every=1, **common)
    if kind == "red":
        from effdata.attacks import FGSM, perturb_dataset
        from effdata.models import MLP
        from effdata.red import AdvPairs, DnCNN, REDTrainer
        data = digits.subset(range(96)); clf = MLP()
        adv = perturb_dataset(FGSM(0.1), clf, data)
        pairs = AdvPairs(data.images, adv, data.targets, torch.zeros(len(data)), torch.zeros(len(data)),
                         torch.arange(len(data)), ["fgsm"], ["mlp"], [0.1], data.classes, name="digits")
        seed_everything(0); den = DnCNN(1, 3, 8)
        return REDTrainer(den, pairs, clf, setting="CDD-RED", epochs=3, batch_size=16, ckpt_every=4, log_every=1, **common)
    raise SystemExit(f"unknown kind {kind!r}")


def work(kind: str, run: str, resume: bool = False, kill_in_save: int | None = None, kill_in_log: int | None = None):
    "Train `kind` in `run` to the end (unless a kill is armed), then write the weights to RUN/final.safetensors."
    torch.set_num_threads(1)
    tr = build(kind, run, resume)
    arm_kills(kill_in_save, kill_in_log)
    tr.fit()
    from safetensors.torch import save_file
    sd = {f"{n}.{k}": v.detach().cpu().contiguous() for n, m in tr.modules().items() for k, v in m.state_dict().items()}
    save_file(sd, os.path.join(run, "final.safetensors"))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("kind"); p.add_argument("run"); p.add_argument("--resume", action="store_true")
    p.add_argument("--kill-in-save", type=int, default=None); p.add_argument("--kill-in-log", type=int, default=None)
    a = p.parse_args(argv)
    work(a.kind, a.run, a.resume, a.kill_in_save, a.kill_in_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
