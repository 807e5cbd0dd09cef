"""A first generative baseline on CPU: DDPMs trained on the full digits, a random 30 % and a Gaussian-density 30 %
coreset for the same number of epochs; FD, precision/recall and class histograms of their samples.

Used by `bench/selection.py --part generative` (results under "generative_baseline" in selection.json); the settings are
recorded so the reweighting experiment can continue from them.

Data: scikit-learn's 8x8 digits (1437 train images, real handwriting). Evaluation features: the penultimate layer of a
SmallCNN digits classifier trained here (its test accuracy is recorded); the coreset's surrogate features are a fixed
random projection of the pixels, so selection and evaluation do not share a feature space.
"""
from __future__ import annotations

import time

import numpy as np
import torch

SETTINGS = dict(dataset="digits", config="digits_small", block_out_channels=(32, 64), attention_resolutions=(4,),
                epochs=40, batch_size=64, lr=1e-3, warmup_steps=50, fraction=0.3, surrogate="pixels", score="gaussian",
                n_samples=1000, sample_steps=25, classifier="SmallCNN(width=32), 30 epochs", seeds=[0])


def feature_net(train, test, seed=0):
    from effdata.core import seed_everything
    from effdata.models import SmallCNN
    from effdata.train import ClassifierTrainer
    seed_everything(seed)
    tr = ClassifierTrainer(SmallCNN(1, 10, 32), train, epochs=30, batch_size=64, lr=0.05, seed=seed, progress=False).fit()
    return tr.model.eval(), tr.evaluate(test)


def run(res, rows, settings=SETTINGS):
    from effdata.data import Selection, load_dataset
    from effdata.diffusion import DDPMTrainer, get_config, make_unet, sample
    from effdata.models import count_params
    from effdata.metrics import generative_scores
    from effdata.selection import coreset, random_scores, select
    s = settings
    train, test = load_dataset(s["dataset"]), load_dataset(s["dataset"], "test")
    clf, clf_acc = feature_net(train, test)
    enc = lambda x: clf.features(x)
    cfg = get_config(s["config"], block_out_channels=s["block_out_channels"], attention_resolutions=s["attention_resolutions"],
                     lr=s["lr"], warmup_steps=s["warmup_steps"])
    real = train.tensors()[0]
    out = []
    for seed in s["seeds"]:
        t0 = time.perf_counter(); core = coreset(train, s["fraction"], score=s["score"], encoder=s["surrogate"], seed=seed, progress=False)
        t_sel = time.perf_counter() - t0
        sels = {"full": (Selection.full(len(train)), 0.0),
                "random": (select(random_scores(len(train), seed), s["fraction"], train.targets, seed=seed, info={"method": "random"}), 0.0),
                "gaussian": (core, t_sel)}
        for method, (sel, t_sel_m) in sels.items():
            t0 = time.perf_counter()
            tr = DDPMTrainer(train, cfg, selection=sel, epochs=s["epochs"], batch_size=s["batch_size"], seed=seed, progress=False).fit()
            t_train = time.perf_counter() - t0
            fake = sample(tr.ema, cfg, s["n_samples"], steps=s["sample_steps"], seed=1000 + seed)
            sc = generative_scores(real, fake, enc, classifier=clf)
            row = {"method": method, "fraction": 1.0 if method == "full" else s["fraction"], "seed": seed,
                   "fd": sc["fd"], "precision": sc["precision"], "recall": sc["recall"], "class_tv": sc["class_tv"],
                   "class_counts": sc["class_counts"].tolist(), "train_steps": tr.step, "train_seconds": t_train,
                   "selection_seconds": t_sel_m, "final_loss": float(np.mean(tr.history[-20:]))}
            out.append(row); print(row, flush=True)
            rows.append({"what": f"DDPM digits, {method} {row['fraction']:.0%}, {s['epochs']} epochs, seed {seed}",
                         "ours s": t_train, "scikit-learn s": "", "ours/sklearn": "",
                         "note": f"FD {sc['fd']:.2f}, precision {sc['precision']:.2f}, recall {sc['recall']:.2f}, "
                                 f"class TV {sc['class_tv']:.3f}, {tr.step} steps"})
    real_fd = generative_scores(real, test.tensors()[0], enc)
    res["generative_baseline"] = out
    res["generative_settings"] = {**s, "feature_classifier_test_acc": clf_acc, "threads": torch.get_num_threads(),
                                  "fd_train_vs_test_real": real_fd["fd"], "unet_params": count_params(make_unet(cfg))}
    rows.append({"what": "reference: FD of real test vs real train digits", "ours s": "", "scikit-learn s": "",
                 "ours/sklearn": "", "note": f"FD {real_fd['fd']:.2f} (feature net test acc {clf_acc:.1%})"})
