"""The shared training loop: exact resume, Ctrl-C safety, weighted selections."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import torch

from effdata.core import seed_everything
from effdata.data import Selection, load_dataset
from effdata.models import MLP, SmallCNN
from effdata.train import ClassifierTrainer

KW = dict(epochs=3, batch_size=32, lr=0.05, progress=False)


def _weights(m):
    return [v.clone() for v in m.state_dict().values()]


def test_resume_bit_exact_cifar(data_root, tmp_path):
    """CIFAR subset with augmentation, a BN CNN, stopped mid-epoch: the resumed run matches exactly."""
    from effdata.data import train_transform
    ds = load_dataset("cifar10", root=data_root, transform=train_transform("cifar10")).subset(range(640))
    kw = dict(epochs=2, batch_size=64, lr=0.05, progress=False)
    seed_everything(0); full = ClassifierTrainer(SmallCNN(width=8), ds, run=tmp_path / "a", **kw).fit()
    seed_everything(0); part = ClassifierTrainer(SmallCNN(width=8), ds, run=tmp_path / "b", **kw).fit(max_steps=13)
    rest = ClassifierTrainer(SmallCNN(width=8), ds, run=tmp_path / "b", resume=True, **kw).fit()
    assert part.history + rest.history == full.history
    for a, b in zip(_weights(full.model), _weights(rest.model)):
        assert torch.equal(a, b)


def test_weighted_selection_changes_training():
    ds = load_dataset("digits")
    sel = Selection(np.arange(len(ds)), len(ds), weights=np.where(ds.targets.numpy() == 3, 10.0, 0.1))
    seed_everything(0); a = ClassifierTrainer(MLP(), ds, **KW).fit()
    seed_everything(0); b = ClassifierTrainer(MLP(), ds, selection=sel, **KW).fit()
    test = load_dataset("digits", "test")
    pa = a.model(test.tensors()[0]).argmax(1); pb = b.model(test.tensors()[0]).argmax(1)
    assert (pb == 3).sum() > (pa == 3).sum()   # up-weighting class 3 makes the model predict it more


SCRIPT = r"""
import sys, time
from effdata.core import seed_everything
from effdata.data import load_dataset
from effdata.models import MLP
from effdata.train import ClassifierTrainer
class Slow(ClassifierTrainer):
    def after_step(self):
        if self.step >= 5: time.sleep(0.05)
        if self.step == 5: print("READY", flush=True)
seed_everything(0)
Slow(MLP(), load_dataset("digits"), epochs=3, batch_size=32, lr=0.05, progress=False, run=sys.argv[1],
     resume=len(sys.argv) > 2).fit()
print("DONE", flush=True)
"""


def test_ctrl_c_saves_and_resumes(tmp_path):
    """SIGINT mid-training: the step finishes, a checkpoint is written, and resuming reproduces the full run."""
    script = tmp_path / "train.py"; script.write_text(SCRIPT)
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, str(script), str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "READY"
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode != 0 and "KeyboardInterrupt" in err and "resume=True" in err
    ckpts = sorted((run / "checkpoints").glob("step-*"))
    stopped = int(ckpts[-1].name.split("-")[1])
    assert 5 < stopped < 135, stopped                      # saved where it stopped, not at an epoch end
    subprocess.run([sys.executable, str(script), str(run), "resume"], check=True, capture_output=True, timeout=300)
    seed_everything(0)
    ref = ClassifierTrainer(MLP(), load_dataset("digits"), epochs=3, batch_size=32, lr=0.05, progress=False).fit()
    from effdata.core import load_checkpoint
    m = MLP(); load_checkpoint(sorted((run / "checkpoints").glob("step-*"))[-1], m)
    for a, b in zip(_weights(ref.model), _weights(m)):
        assert torch.equal(a, b)
