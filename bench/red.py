"""RED benchmark: DO, DS and CDD-RED denoisers trained on FGSM/PGD/CW examples against one victim, evaluated on
those attacks (seen) and on held-out ones (AutoAttack APGD-CE; an unseen victim), with PSNR/SSIM, prediction
alignment and attribution (Grad-CAM, IG) alignment.

    EFFDATA_DATA=../shared/data python bench/red.py [--dataset cifar10|mnist|all] [--threads 1]

Writes bench/results/red.json and red.md. The denoiser is a small DnCNN on the CPU (the paper's is 17 layers
x 64 channels); all three settings get the same denoiser, data, epochs, optimiser and seed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, write  # noqa: E402

# dataset -> (alignment classifier = training victim, unseen victim, eps, PGD step, CW step)
SETUPS = {
    "cifar10": dict(victim="cifar10_cnn", unseen_victim="cifar10_lenet", eps=8 / 255, alpha=2 / 255, cw_alpha=1 / 255),
    "mnist": dict(victim="mnist_lenet5", unseen_victim="mnist_lenet5_robust", eps=0.3, alpha=0.03, cw_alpha=0.03),
}


def run_dataset(name: str, args, log) -> dict:
    from effdata.attacks import CW, FGSM, PGD, AutoAttack
    from effdata.core import seed_everything
    from effdata.data import load_dataset
    from effdata.models import count_params
    from effdata.red import (SETTINGS, AdvPairs, DnCNN, REDTrainer, build_pairs, evaluate_red,
                             load_victim, summarize)
    s = SETUPS[name]
    f = load_victim(s["victim"])
    unseen = load_victim(s["unseen_victim"])
    eps = s["eps"]
    train_attacks = {"fgsm": FGSM(eps), "pgd": PGD(eps, s["alpha"], 10, seed=0), "cw": CW(eps, s["cw_alpha"], 20, seed=0)}
    tr_data, te_data = load_dataset(name, "train"), load_dataset(name, "test")
    t0 = time.perf_counter()
    train = build_pairs(tr_data, {s["victim"]: f}, train_attacks, limit=args.n_train, cache=args.cache, seed=0)
    seen = build_pairs(te_data, {s["victim"]: f}, train_attacks, limit=args.n_test, cache=args.cache, seed=1)
    held = build_pairs(te_data, {s["victim"]: f}, {"autoattack": AutoAttack(eps, attacks=["apgd-ce"], seed=0)},
                       limit=args.n_aa, cache=args.cache, seed=2)
    held_v = build_pairs(te_data, {s["unseen_victim"]: unseen}, {"pgd": train_attacks["pgd"]}, limit=args.n_test,
                         cache=args.cache, seed=3)
    test = AdvPairs.concat([seen, held, held_v]).perturbed()    # AutoAttack returns already-misclassified images unchanged
    t_data = time.perf_counter() - t0
    log(f"[{name}] pairs: train {len(train)}, test {len(test)} in {t_data:.0f} s")

    denoisers, train_info = {}, {}
    for setting in SETTINGS:
        seed_everything(0)
        den = DnCNN(train.shape[0], args.depth, args.width)
        t = time.perf_counter()
        tr = REDTrainer(den, train, f, setting=setting, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        seed=0, progress=False, classifier_name=s["victim"]).fit()
        secs = time.perf_counter() - t
        denoisers[setting] = tr.model.eval()
        n = max(1, len(tr.history) // 10)
        train_info[setting] = {"seconds": secs, "steps": tr.step, "final_loss": sum(tr.history[-n:]) / n,
                               "gamma": tr.gamma, "lam": tr.lam, "augment": list(tr.augment)}
        log(f"[{name}] {setting}: {tr.step} steps in {secs:.0f} s, final loss {train_info[setting]['final_loss']:.4f}")

    t = time.perf_counter()
    seed_everything(0)
    ident = DnCNN(train.shape[0], 3, 4)          # the identity at initialisation: what x' itself scores
    rows = evaluate_red({**denoisers, "identity": ident}, test, f, k=args.k, ig_steps=args.ig_steps,
                        attr_limit=args.attr_limit)
    t_eval = time.perf_counter() - t
    log(f"[{name}] evaluation in {t_eval:.0f} s")
    for r in rows: r["seen"] = r["attack"] in train.attacks and r["victim"] in train.victims
    main = [r for r in rows if r["setting"] != "identity"]
    mean = {r["setting"]: r for r in summarize(main)}
    seen_mean = {r["setting"]: r for r in summarize([r for r in main if r["seen"]])}
    unseen_mean = {r["setting"]: r for r in summarize([r for r in main if not r["seen"]])}
    return {
        "dataset": name, "victim": s["victim"], "alignment_classifier": s["victim"], "unseen_victim": s["unseen_victim"],
        "eps": eps, "train_attacks": {k: repr(a) for k, a in train_attacks.items()},
        "held_out": {"autoattack": f"AutoAttack(eps={eps:.4g}, apgd-ce) vs {s['victim']} on the {len(test.cell('autoattack'))} "
                                   f"of the first {len(held)} test images it perturbed",
                     "unseen_victim": f"PGD-10 vs {s['unseen_victim']} on {len(held_v)} test images"},
        "n_train_pairs": len(train), "n_test_images": args.n_test, "n_autoattack_images": len(test.cell("autoattack")),
        "denoiser": {"arch": "DnCNN", "depth": args.depth, "width": args.width,
                     "params": count_params(DnCNN(train.shape[0], args.depth, args.width))},
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "optimizer": "adam, cosine",
        "k": args.k, "ig_steps": args.ig_steps, "attr_limit": args.attr_limit,
        "training": train_info, "seconds_data": t_data, "seconds_eval": t_eval,
        "rows": [_row(r) for r in main], "identity_rows": [_row(r) for r in rows if r["setting"] == "identity"],
        "mean": mean, "mean_seen": seen_mean, "mean_unseen": unseen_mean,
        "pa_adv_gain_vs_do": 100 * (mean["CDD-RED"]["pa_adv"] - mean["DO"]["pa_adv"]),
        "pa_adv_gain_vs_do_unseen": 100 * (unseen_mean["CDD-RED"]["pa_adv"] - unseen_mean["DO"]["pa_adv"]),
        "psnr_gap_vs_do": mean["DO"]["psnr"] - mean["CDD-RED"]["psnr"],
    }


KEYS = ("setting", "attack", "victim", "seen", "n", "psnr", "ssim", "psnr_delta", "ssim_delta", "pa_benign", "pa_adv",
        "iou_gradcam", "iou_ig", "iou_gradcam_benign", "iou_gradcam_adv", "iou_ig_benign", "iou_ig_adv", "n_attr")


def _row(r):
    return {k: r[k] for k in KEYS if k in r}


def md_rows(res) -> list[dict]:
    rows = []
    for d in res["datasets"]:
        for r in d["rows"] + d["identity_rows"]:
            rows.append({"dataset": d["dataset"], "setting": r["setting"], "attack": r["attack"], "victim": r["victim"],
                         "seen": r["seen"], "PSNR x": r["psnr"], "SSIM x": r["ssim"], "PSNR δ": r["psnr_delta"],
                         "SSIM δ": r["ssim_delta"], "PA_benign": r["pa_benign"], "PA_adv": r["pa_adv"],
                         "IoU Grad-CAM": r["iou_gradcam"], "IoU IG": r["iou_ig"]})
        for s, m in d["mean"].items():
            rows.append({"dataset": d["dataset"], "setting": s, "attack": "mean (all cells)", "victim": "", "seen": "",
                         "PSNR x": m["psnr"], "SSIM x": m["ssim"], "PSNR δ": m["psnr_delta"], "SSIM δ": m["ssim_delta"],
                         "PA_benign": m["pa_benign"], "PA_adv": m["pa_adv"], "IoU Grad-CAM": m["iou_gradcam"], "IoU IG": m["iou_ig"]})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="cifar10", choices=["cifar10", "mnist", "all"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=1000, help="training images (x 3 attacks = pairs)")
    ap.add_argument("--n-test", type=int, default=200, help="test images per seen-attack cell and for the unseen victim")
    ap.add_argument("--n-aa", type=int, default=100, help="test images for AutoAttack (APGD-CE)")
    ap.add_argument("--depth", type=int, default=8); ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=5); ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--k", type=float, default=0.1); ap.add_argument("--ig-steps", type=int, default=16)
    ap.add_argument("--attr-limit", type=int, default=64, help="images per cell with attribution maps")
    ap.add_argument("--cache", default="/tmp/effdata_red_cache", help="folder for the adversarial pairs")
    ap.add_argument("--name", default="red", help="result files bench/results/<name>.json/.md (e.g. for a longer run)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    log = lambda m: print(f"{time.perf_counter() - t0:7.0f} s  {m}", flush=True)
    names = ["cifar10", "mnist"] if args.dataset == "all" else [args.dataset]
    old = RESULTS / f"{args.name}.json"
    prev = {d["dataset"]: d for d in json.loads(old.read_text()).get("datasets", [])} if old.exists() else {}
    for n in names: prev[n] = run_dataset(n, args, log)
    datasets = [prev[n] for n in ("cifar10", "mnist") if n in prev]
    first = datasets[0]
    res = {"dataset": first["dataset"], "rows": first["rows"], "pa_adv_gain_vs_do": first["pa_adv_gain_vs_do"],
           "psnr_gap_vs_do": first["psnr_gap_vs_do"], "denoiser": first["denoiser"], "epochs": first["epochs"],
           "goal": "CDD-RED PA_adv >= 10 points above DO with PSNR within 1.5 dB (mean over cells)",
           "goal_met": {d["dataset"]: bool(d["pa_adv_gain_vs_do"] >= 10 and d["psnr_gap_vs_do"] <= 1.5) for d in datasets},
           "datasets": datasets, "machine": machine(args.threads), "seconds_total": time.perf_counter() - t0}
    notes = []
    for d in datasets:
        notes.append(f"**{d['dataset']}**: DnCNN depth {d['denoiser']['depth']} width {d['denoiser']['width']} "
                     f"({d['denoiser']['params']:,} parameters; the paper's is 17 x 64, too slow for this CPU), {d['epochs']} epochs "
                     f"on {d['n_train_pairs']} pairs (FGSM, PGD-10, CW-20 vs {d['victim']}, eps {d['eps']:.4g}), batch "
                     f"{d['batch_size']}, Adam lr {d['lr']}. CDD-RED minus DO: PA_adv {d['pa_adv_gain_vs_do']:+.1f} points "
                     f"(unseen cells {d['pa_adv_gain_vs_do_unseen']:+.1f}); DO minus CDD-RED PSNR {d['psnr_gap_vs_do']:+.2f} dB. "
                     f"Training s: " + ", ".join(f"{k} {v['seconds']:.0f}" for k, v in d["training"].items()) + ". "
                     f"Held out: {d['held_out']['autoattack']}; {d['held_out']['unseen_victim']}.")
    notes.append("PSNR/SSIM x: x_RED vs x; δ: δ_RED vs δ (data range 2 eps). PA_benign: f(x_RED) = f(x); PA_adv: "
                 "f(x + δ_RED) = f(x'). IoU: top-10 % pixels of the attribution maps, mean of (x vs x_RED) and "
                 "(x' vs x'_RED), on the first attr_limit images of each cell. 'identity' = no denoising (x_RED = x'). "
                 "Goal (CDD-RED PA_adv >= DO + 10 points, PSNR within 1.5 dB): " +
                 ", ".join(f"{k} {'met' if v else 'not met'}" for k, v in res["goal_met"].items()) + ".")
    write(args.name, res, "Reverse engineering of deceptions: DO vs DS vs CDD-RED", md_rows(res), "\n\n".join(notes))
    print((RESULTS / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
