"""Small, real instances of every effdata explorer, for the widget and browser tests.

Each builder trains or selects for real, at the smallest size that still gives each control something to change,
so that JupyterLab can build all of them in seconds. `CONTROLS` names the controls each explorer exposes.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch


def coreset():
    from effdata.data import load_dataset
    from effdata.features import encoder, extract
    from effdata.selection import CoresetExplorer
    digits = load_dataset("digits")
    fd = extract(encoder("pixels", dataset=digits, dim=32), digits, progress=False)
    return CoresetExplorer(digits, fd, fraction=0.3)


def class_weights():
    from effdata.data import load_dataset
    from effdata.diffusion import DDPMTrainer, get_config
    from effdata.reweighting import ClassWeightsExplorer, DROTrainer
    from effdata.selection import coreset as make_coreset
    digits = load_dataset("digits")
    tmp = Path(tempfile.mkdtemp())
    tiny = get_config("digits_small", block_out_channels=(8, 16), attention_resolutions=())
    DDPMTrainer(digits, tiny, steps=6, batch_size=32, progress=False, run=tmp / "ref").fit()
    core = make_coreset(digits, 0.3, score="gaussian", encoder="pixels", progress=False)
    cw = DROTrainer(digits, tmp / "ref", tiny, selection=core, steps=12, batch_size=32, progress=False,
                    run=tmp / "dro").fit().result()
    # two class mixes for the histogram panel: the data's own, and the same tilted by the learnt weights (inputs for
    # the widget test, not generated samples: the diffusion tutorial shows the measured ones)
    counts = np.bincount(digits.targets.numpy(), minlength=10).astype(float)
    return ClassWeightsExplorer(cw, {"without reweighting": counts, "with reweighting": counts * cw.weights * 10})


def pruning():
    from effdata.at import ATTrainer, PruningExplorer
    from effdata.data import load_dataset
    from effdata.models import MLP
    digits, test = load_dataset("digits"), load_dataset("digits", "test")
    run = Path(tempfile.mkdtemp()) / "at"
    torch.manual_seed(0)
    ATTrainer(MLP(), digits, objective="fast", eps=0.1, subset="random", fraction=0.3, warm=1, every=1, epochs=3,
              batch_size=128, lr=0.05, eval_data=test, eval_limit=100, progress=False, run=run).fit()
    return PruningExplorer(run, digits)


def mask():
    from effdata.data import load_dataset
    from effdata.mpt import MaskExplorer, build
    digits = load_dataset("digits")
    net = build("mlp", digits.shape, 10, kept=0.2, hidden=(64, 64), seed=1)
    return MaskExplorer(net)


def red():
    from effdata.attacks import get_attack
    from effdata.core import seed_everything
    from effdata.data import load_dataset
    from effdata.red import DnCNN, REDExplorer, REDTrainer, build_pairs, load_victim
    mnist = load_dataset("mnist", "test")
    f = load_victim("mnist_lenet5")
    pairs = build_pairs(mnist, {"lenet5": f}, {"fgsm": get_attack("fgsm", eps=0.3), "pgd": get_attack("pgd", eps=0.3, steps=3, seed=0)},
                        limit=24)
    dens = {}
    for s in ("DO", "CDD-RED"):
        seed_everything(0)
        dens[s] = REDTrainer(DnCNN(1, 3, 8), pairs, f, setting=s, batch_size=16, lr=2e-3, seed=0,
                             progress=False).fit(max_steps=4).model.eval()
    return REDExplorer(pairs, f, dens, ig_steps=4)


BUILDERS = {"coreset": coreset, "class_weights": class_weights, "pruning": pruning, "mask": mask, "red": red}
CONTROLS = {"coreset": ["score_w", "fraction", "klass"], "class_weights": ["step"], "pruning": ["round"],
            "mask": ["kept"], "red": ["attack", "method", "denoiser", "image"]}
