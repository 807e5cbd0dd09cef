"""Pruning then reweighting for a latent diffusion model, on CPU with real data, in the converged protocol.

Data: the MNIST train subset (all 17,435 images), downsampled to 16x16 (antialiased bilinear) so that a VAE and a DiT
train on one core; the MNIST test set (10,000 images, 16x16) only scores the FD feature network.

Pipeline (effdata.latent): a small diffusers AutoencoderKL trained here once (16x16x1 -> 4x4x4 latents; its training,
calibration and the one encoding of the data are timed and reported apart), latents cached, a class-conditional
DiTTransformer2DModel (4 layers, 4 heads x 16, patch 1) trained by DDPMTrainer with label dropout 0.1, sampled with
DDIM (guidance scale 1), decoded by the VAE.

Two protocols. 'wsd' (the default; results/latent_pruning.{json,md}, rows latent_pruning.jsonl) is the headline: every
budget ends with its own learning-rate decay, so the full data converges by budget (WSD_DOC below states it). 'constant'
(results/latent_pruning_constant.*, rows latent_pruning_constant.jsonl) was the first: a constant learning rate after
warm-up, FD read along one run; its full run never flattened on this CPU and it is kept for the record:
- the full-data latent DM (seed 0) trains until its FD changes by less than 2 % over the last quarter of its steps,
  checked at S in LADDER (FD(S) vs FD(0.75 S)); S is the first such step count, or the last rung, flagged unconverged.
  The first run stopped at 2400 steps (FD still -19 % over its last quarter; rows in latent_pruning_s2400.jsonl);
  the ladder now ends at 9600 (4x longer; a 16000 rung would cost ~1.7x more per seed than this session could give),
  and the full run still moved -12 % over its last quarter there, so S = 9600 is flagged unconverged;
- the full runs of the other seeds train to the same S; their FD is read at p*S on the way (the full data stopped
  at the coreset's step count);
- for each kept fraction p (0.1, 0.2, 0.3: the fractions at which a >= 3x speed-up is possible): a Gaussian-density
  coreset on a surrogate (a fixed random projection of the pixels, as in the pixel-space benchmark: selection and FD
  do not share a feature space), the same + DRO class weights (a proxy latent DM on the coreset against the seed's
  full run as reference), and a random class-balanced subset, each trained p*S steps (equal epochs);
- 3 seeds. FD: Frechet distance of 500 decoded samples (50 per class) to the 17,435 real training images in the
  penultimate layer of a SmallCNN trained here on the train split only (its test accuracy is recorded).

Costs: CPU seconds at 1 torch thread (time.process_time) and wall seconds, both saved. speedup_at_matched_fd = full
training cost to S / (coreset training + surrogate features + scoring + DRO proxy) at the best (largest-speed-up) p
whose mean FD over the seeds is within 10 % of the converged full FD; the reference DM is the full run itself and is
not counted (it is the run being sped up); the VAE is shared by all runs and reported apart.

    EFFDATA_DATA=../shared/data nohup python bench/latent_pruning.py > bench/runs/latent_wsd.log 2>&1 &
    python bench/latent_pruning.py --report              # rewrite latent_pruning.json/.md from the rows so far
    python bench/latent_pruning.py --seeds 2             # one seed (seed 0 first: it fixes S); two processes may share
                                                         # the rows file, one seed each
    python bench/latent_pruning.py --dynamic --seeds 0 1 2   # only the InfoBatch-style dynamic-pruning rows
    python bench/latent_pruning.py --fd-draws            # the two rungs that fixed S, scored with 4 sampler draws: how
                                                         # noisy is the 500-sample FD the 2 % rule reads?
    python bench/latent_pruning.py --protocol constant [--report | --extend 16000]   # the first protocol (the 'wsd'
                                                         # budgets branch off its constant-LR runs and reuse its VAE)

Rows are appended to the protocol's rows file as each run finishes; a restart skips the finished ones.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, Rows, machine, write  # noqa: E402

S = dict(dataset="mnist", image_size=16, preset="mnist16_dit", vae_steps=1000, ladder=[3200, 4800, 6400, 9600], trainer_steps=16000,
         converge_tol=0.02, fractions=[0.1, 0.2, 0.3], seeds=[0, 1, 2], surrogate="pixels", score="gaussian",
         dro_steps=100, dro_step_size=1.0, dro_smoothing=1e-3, n_samples=500, sample_steps=20, guidance_scale=1.0,
         match_tolerance=0.10, infobatch_prune=0.5, infobatch_anneal=0.875, classifier="SmallCNN(width=32), 2 epochs, train split", threads=1)
ROWS = RESULTS / "latent_pruning.jsonl"                  # protocol 'wsd'; 'constant': CONSTANT_ROWS
CONSTANT_ROWS = RESULTS / "latent_pruning_constant.jsonl"
# the first run (ladder 800-2400, capped at 2400 steps unconverged) is kept in results/latent_pruning_s2400.jsonl


class Clock:
    "CPU (process_time, 1 thread) and wall seconds of a block."
    def __enter__(self): self.c, self.w = time.process_time(), time.perf_counter(); return self
    def __exit__(self, *a): self.cpu, self.wall = time.process_time() - self.c, time.perf_counter() - self.w


def rows() -> list[dict]: return Rows(ROWS).rows


def done(kind, **key) -> dict | None: return Rows(ROWS).first(kind=kind, **key)


def add(row: dict) -> dict:
    print({k: v for k, v in row.items() if k != "curve"}, flush=True)
    return Rows(ROWS).add(row)


def fd_points(S_: int) -> list[int]:
    return sorted({round(f * S_) for f in [*S["fractions"], 0.75, 1.0]})


class Setup:
    "Data, feature network, VAE and latents (made once; the VAE and its times are kept in the work folder)."
    def __init__(self, work: Path):
        from effdata.data import load_dataset
        from effdata.latent import encode_latents, fit_size, fit_vae, get_latent_config, load_vae
        from effdata.models import SmallCNN
        from effdata.train import ClassifierTrainer
        self.cfg = get_latent_config(S["preset"])
        self.raw = load_dataset(S["dataset"])
        self.train, self.test = fit_size(self.raw, self.cfg), fit_size(load_dataset(S["dataset"], "test"), self.cfg)
        clf_path = work / "feature_net.pt"
        clf = SmallCNN(1, 10, 32)
        if clf_path.exists(): clf.load_state_dict(torch.load(clf_path, weights_only=True))
        else:
            tr = ClassifierTrainer(clf, self.train, epochs=2, batch_size=64, lr=0.05, seed=0, progress=False).fit()
            torch.save(tr.model.state_dict(), clf_path)
        self.clf = clf.eval().requires_grad_(False)
        self.clf_acc = float((self.clf(self.test.tensors()[0]).argmax(1) == self.test.targets).float().mean())
        with torch.no_grad(): self.real = self.clf.features(self.train.tensors()[0])
        from effdata.metrics import frechet_distance
        with torch.no_grad(): self.fd_real = float(frechet_distance(self.real, self.clf.features(self.test.tensors()[0])))
        vae_dir = work / "vae"
        if not done("vae"):
            with Clock() as c:
                vae = fit_vae(self.train, self.cfg, steps=S["vae_steps"], seed=0, save=vae_dir, progress=False)
            with Clock() as e: encode_latents(vae, self.train, cache=work / "cache")
            with torch.no_grad():
                x = self.test.tensors()[0][:2000]
                rec = ((vae.decode(vae.encode(x * 2 - 1).latent_dist.mean).sample + 1) / 2).clamp(0, 1)
            add(dict(kind="vae", steps=S["vae_steps"], cpu_train=c.cpu, wall_train=c.wall, cpu_encode=e.cpu, wall_encode=e.wall,
                     test_mse=float((rec - x).pow(2).mean()), scaling_factor=vae.config.scaling_factor,
                     params=sum(p.numel() for p in vae.parameters())))
        self.vae = load_vae(vae_dir)
        self.z = encode_latents(self.vae, self.train, cache=work / "cache")

    def _feats(self, tr, seed: int = 1000) -> torch.Tensor:
        x = tr.sample(S["n_samples"], steps=S["sample_steps"], seed=seed, guidance_scale=S["guidance_scale"])
        with torch.no_grad(): return self.clf.features(x)

    def fd(self, tr, seed: int = 1000) -> float:
        "FD of the sampler's draw `seed` (1000: the draw every row uses, so rows share their noise)."
        from effdata.metrics import frechet_distance
        return float(frechet_distance(self.real, self._feats(tr, seed)))

    def score(self, tr) -> dict:
        """FD, and improved precision / recall (k=3) of the same samples against a fixed draw of as many real training
        images (equal set sizes, as Kynkaenniemi et al.): does a low FD come with the diversity of the data?"""
        from effdata.metrics import frechet_distance, precision_recall
        f = self._feats(tr)
        real = self.real[torch.randperm(len(self.real), generator=torch.Generator().manual_seed(0))[:len(f)]]
        return dict(fd=float(frechet_distance(self.real, f)), **precision_recall(real, f, k=3))


def trainer(st: Setup, seed: int, steps: int, selection=None, run=None, resume=False, **kw):
    from effdata.latent import LatentDDPMTrainer
    return LatentDDPMTrainer(st.train, st.vae, st.cfg, latents=st.z, selection=selection, steps=steps, seed=seed,
                             run=run, resume=resume, ckpt_every=10**9, progress=False, **kw)


def full_run(st: Setup, seed: int, work: Path, S_: int | None) -> dict:
    """Seed 0 (S_ None): train up the ladder until converged. Other seeds: train to S_; FD at p*S_ on the way.
    Resumable: the run folder keeps a checkpoint at every FD point and `curve.json` the readings so far."""
    if (r := done("full", seed=seed)): return r
    cap = S["ladder"][-1] if S_ is None else S_
    points = sorted(set().union(*[fd_points(s) for s in S["ladder"]])) if S_ is None else fd_points(S_)
    run, side = work / f"full{seed}", work / f"full{seed}.curve.json"
    resume = side.exists() and (run / "checkpoints").exists()
    if not resume:
        import shutil
        shutil.rmtree(run, ignore_errors=True); side.unlink(missing_ok=True)
    # constant LR after warm-up: the trainer's total only names the run (seed 0's run folder was made with 16000)
    tr = trainer(st, seed, S["trainer_steps"] if S_ is None else cap, run=run, resume=resume)
    curve = [c for c in json.loads(side.read_text()) if c["step"] <= tr.step] if resume else []
    cpu, wall = (curve[-1]["cpu"], curve[-1]["wall"]) if curve else (0.0, 0.0)
    if resume: print(f"  full seed {seed}: resumed at step {tr.step} ({len(curve)} FD readings)", flush=True)
    converged, stop = None, cap
    for p in points:
        if curve and p <= curve[-1]["step"]:
            c_ = curve[-1]
        else:
            with Clock() as c: tr.fit(max_steps=p)
            cpu += c.cpu; wall += c.wall
            curve.append(dict(step=p, fd=st.fd(tr), cpu=cpu, wall=wall))
            side.write_text(json.dumps(curve))
            print(f"  full seed {seed} step {p}: FD {curve[-1]['fd']:.3f} ({cpu:.0f} s CPU)", flush=True)
        if S_ is None and p in S["ladder"]:
            now = next(c_ for c_ in curve if c_["step"] == p)
            back = next(c_ for c_ in curve if c_["step"] == round(0.75 * p))
            change = abs(now["fd"] - back["fd"]) / back["fd"]
            if change < S["converge_tol"] or p == S["ladder"][-1]:
                converged, stop = change < S["converge_tol"], p
                break
    curve = [c_ for c_ in curve if c_["step"] <= stop]
    row = add(dict(kind="full", seed=seed, steps=stop, fd=curve[-1]["fd"], cpu_train=curve[-1]["cpu"],
                   wall_train=curve[-1]["wall"], converged=converged, curve=curve))
    full_pr(st, seed, work, row, tr)
    return row


def full_pr(st: Setup, seed: int, work: Path, row: dict, tr=None) -> dict | None:
    "Precision / recall of a finished full run at its S (a row of its own; from the run folder's last checkpoint)."
    if (r := done("full_pr", seed=seed)): return r
    if tr is None:
        if not (work / f"full{seed}" / "checkpoints").exists(): return None
        tr = trainer(st, seed, S["trainer_steps"] if seed == 0 else row["steps"], run=work / f"full{seed}", resume=True)
    if tr.step != row["steps"]: print(f"  full seed {seed}: run folder at step {tr.step}, not {row['steps']}: no precision/recall"); return None
    sc = st.score(tr)
    return add(dict(kind="full_pr", seed=seed, steps=tr.step, precision=sc["precision"], recall=sc["recall"], fd_check=sc["fd"]))


def extend_full(st: Setup, work: Path, to: int) -> dict:
    """The convergence probe beyond the ladder: a copy of seed 0's full run folder (the original stays the DRO reference)
    trains on from S to `to` steps (at most trainer_steps, which names the run), FD at 0.75 `to` and `to` and precision /
    recall at `to`: has the full-data FD flattened there (change over the last quarter < converge_tol)? A row of its own
    (kind 'full_extension'); S and the table's rows are unchanged. Resumable like the full run."""
    import shutil
    if (r := done("full_extension", seed=0, steps=to)): return r
    base = done("full", seed=0)
    if base is None: sys.exit("run seed 0 first: the probe continues its full run")
    if not base["steps"] < to <= S["trainer_steps"]: sys.exit(f"--extend {to}: pass a step count in ({base['steps']}, {S['trainer_steps']}]")
    run, side = work / "full0_ext", work / "full0_ext.curve.json"
    if not (run / "checkpoints").exists():
        shutil.rmtree(run, ignore_errors=True); shutil.copytree(work / "full0", run)
        for ck in (run / "checkpoints").iterdir():              # start from S exactly
            if int(ck.name.split("-")[-1]) > base["steps"]: shutil.rmtree(ck)
        side.write_text(json.dumps([c for c in base["curve"] if c["step"] <= base["steps"]]))
    tr = trainer(st, 0, S["trainer_steps"], run=run, resume=True)
    curve = [c for c in json.loads(side.read_text()) if c["step"] <= tr.step]
    cpu, wall = curve[-1]["cpu"], curve[-1]["wall"]
    print(f"  full seed 0 (extension): resumed at step {tr.step}", flush=True)
    for p in sorted({round(0.75 * to), to}):
        if p <= curve[-1]["step"]: continue
        with Clock() as c: tr.fit(max_steps=p)
        cpu += c.cpu; wall += c.wall
        curve.append(dict(step=p, fd=st.fd(tr), cpu=cpu, wall=wall))
        side.write_text(json.dumps(curve))
        print(f"  full seed 0 (extension) step {p}: FD {curve[-1]['fd']:.3f} ({cpu:.0f} s CPU)", flush=True)
    sc = st.score(tr)
    back = next(c for c in curve if c["step"] == round(0.75 * to))
    change = (curve[-1]["fd"] - back["fd"]) / back["fd"]
    return add(dict(kind="full_extension", seed=0, steps=to, fd=curve[-1]["fd"], change_last_quarter=change,
                    converged=abs(change) < S["converge_tol"], precision=sc["precision"], recall=sc["recall"],
                    cpu_train=cpu, wall_train=wall, curve=curve))


def subset_runs(st: Setup, seed: int, S_: int, work: Path, kind: str = "subset", ref: Path | None = None,
                fractions: list[float] | None = None, **kw):
    """Random, coreset and coreset + DRO at each kept fraction for p * S_ steps (rows of `kind`); `ref`: the DRO
    reference run folder (default: the seed's constant-LR full run); `kw`: trainer options (e.g. schedule='wsd')."""
    from effdata.latent import latent_reweight
    from effdata.selection import coreset, random_scores, select
    for p in fractions or S["fractions"]:
        steps = max(1, round(p * S_))
        with Clock() as c:
            core = coreset(st.train, p, score=S["score"], encoder=S["surrogate"], seed=seed, progress=False)
        sel_cost = dict(cpu_selection=c.cpu, wall_selection=c.wall, seconds_features=core.info["seconds_features"],
                        seconds_scoring=core.info["seconds_scoring"])
        rnd = select(random_scores(len(st.train), seed), p, st.train.targets, seed=seed, info={"method": "random"})
        for method in ("random", "gaussian", "gaussian+dro"):
            if done(kind, seed=seed, fraction=p, method=method): continue
            extra, sel = dict(cpu_selection=0.0, wall_selection=0.0, cpu_proxy=0.0, wall_proxy=0.0), rnd
            if method != "random": extra.update(sel_cost); sel = core
            if method == "gaussian+dro":
                with Clock() as c:
                    cw = latent_reweight(st.train, st.vae, ref or work / f"full{seed}", st.cfg, selection=core, steps=S["dro_steps"],
                                         latents=st.z, step_size=S["dro_step_size"], smoothing=S["dro_smoothing"], seed=seed,
                                         progress=False)
                extra.update(cpu_proxy=c.cpu, wall_proxy=c.wall, class_weights=cw.weights.round(4).tolist())
                sel = cw.apply(core, st.train.targets)
            tr = trainer(st, seed, steps, selection=sel, **kw)
            with Clock() as c: tr.fit()
            add(dict(kind=kind, seed=seed, fraction=p, method=method, steps=steps, **st.score(tr), cpu_train=c.cpu,
                     wall_train=c.wall, **extra))


def summarise():
    R = rows()
    vae = next((r for r in R if r["kind"] == "vae"), None)
    full = [r for r in R if r["kind"] == "full"]
    subs = [r for r in R if r["kind"] == "subset"]
    if not full: print("no full run yet"); return
    S_ = full[0]["steps"]
    fd_full = float(np.mean([r["fd"] for r in full])); cpu_full = float(np.mean([r["cpu_train"] for r in full]))
    wall_full = float(np.mean([r["wall_train"] for r in full]))
    def full_at(step): return float(np.mean([next(c["fd"] for c in r["curve"] if c["step"] == step) for r in full]))
    mean = lambda xs: float(np.mean(xs)) if xs else None
    table, agg = [], {}
    for p in S["fractions"]:
        for m in ("random", "gaussian", "gaussian+dro"):
            rs = [r for r in subs if r["fraction"] == p and r["method"] == m]
            if not rs: continue
            cost = mean([r["cpu_train"] + r["cpu_selection"] + r["cpu_proxy"] for r in rs])
            agg[(p, m)] = dict(fd=mean([r["fd"] for r in rs]), fd_std=float(np.std([r["fd"] for r in rs])), cost=cost,
                               n=len(rs), speedup=cpu_full / cost, precision=mean([r["precision"] for r in rs if "precision" in r]),
                               recall=mean([r["recall"] for r in rs if "recall" in r]))
            a = agg[(p, m)]
            table.append({"method": m, "p": p, "steps": rs[0]["steps"], "seeds": a["n"], "FD mean": a["fd"], "FD std": a["fd_std"],
                          "FD / full(S)": a["fd"] / fd_full, "full FD at same steps": full_at(rs[0]["steps"]),
                          "precision": a["precision"], "recall": a["recall"],
                          "CPU s (train+sel+DRO)": cost, "full cost / row cost": a["speedup"]})
    # the full runs' mean FD curve at the step counts every seed evaluated, against their mean CPU seconds
    pts = fd_points(S_)
    curve = [(float(np.mean([next(c["cpu"] for c in r["curve"] if c["step"] == st) for r in full])), full_at(st), st) for st in pts]
    def full_cost_to(fd):
        "CPU seconds the full run needs to reach `fd` (linear between evaluations; None if it never gets there by S)."
        prev = None
        for cpu, f, st in curve:
            if f <= fd:
                if prev is None: return cpu
                c0, f0, _ = prev
                return c0 + (cpu - c0) * (f0 - fd) / max(f0 - f, 1e-12)
            prev = (cpu, f, st)
        return None
    for (p, m), a in agg.items():
        c = full_cost_to(a["fd"])
        a["speedup_vs_full_curve"] = None if c is None else c / a["cost"]
    for row in table:
        row["speed-up vs full curve at same FD"] = agg[(row["p"], row["method"])]["speedup_vs_full_curve"]
    ext = max((r for r in R if r["kind"] == "full_extension"), key=lambda r: r["steps"], default=None)
    if ext:                                                   # the probe beyond S (seed 0 only): how far from flat?
        for row in table: row[f"FD / full seed 0 at {ext['steps']}"] = row["FD mean"] / ext["fd"]
    def best(m, fd_ref=fd_full, cost_ref=cpu_full):
        "(speed-up, p): the largest `cost_ref` / row cost over the p whose mean FD is within match_tolerance of `fd_ref`, or (None, None)."
        hits = [(cost_ref / agg[(p, m)]["cost"], p) for p in S["fractions"] if (p, m) in agg
                and agg[(p, m)]["fd"] <= fd_ref * (1 + S["match_tolerance"])]
        return max(hits) if hits else (None, None)
    ratio = lambda a, b: {str(p): agg[(p, a)]["fd"] / agg[(p, b)]["fd"] for p in S["fractions"] if (p, a) in agg and (p, b) in agg}
    sp, bp = best("gaussian+dro"); sp_g, bp_g = best("gaussian"); sp_r, bp_r = best("random")
    seeds_done = sorted({r["seed"] for r in full})
    res = dict(protocol="converged", dataset="mnist (17,435-image train subset), downsampled 28->16 (antialiased bilinear)",
               seeds=seeds_done, settings=S, machine=machine(S["threads"]),
               feature_classifier=S["classifier"],
               full=dict(steps=S_, converged=full[0]["converged"], fd=fd_full, cpu_train=cpu_full, wall_train=wall_full,
                         precision=mean([r["precision"] for r in R if r["kind"] == "full_pr"]),
                         recall=mean([r["recall"] for r in R if r["kind"] == "full_pr"]), curve_seed0=full[0]["curve"]),
               vae=vae, speedup_at_matched_fd=sp, speedup_best=dict(method="gaussian+dro", fraction=bp),
               speedup_at_matched_fd_coreset_only=sp_g, speedup_coreset_only_best_fraction=bp_g,
               speedup_at_matched_fd_random=sp_r,
               fd_ratio_vs_random={"gaussian+dro": ratio("gaussian+dro", "random"), "gaussian": ratio("gaussian", "random")},
               fd_ratio_vs_full_same_steps={m: {str(p): agg[(p, m)]["fd"] / full_at(round(p * S_)) for p in S["fractions"]
                                                if (p, m) in agg} for m in ("random", "gaussian", "gaussian+dro")},
               dro_fd_ratio=ratio("gaussian+dro", "gaussian"),
               speedup_vs_full_curve={m: {str(p): agg[(p, m)]["speedup_vs_full_curve"] for p in S["fractions"] if (p, m) in agg}
                                      for m in ("random", "gaussian", "gaussian+dro")},
               full_extension=None if ext is None else {k: ext[k] for k in ("steps", "fd", "change_last_quarter", "converged",
                                                                            "precision", "recall", "cpu_train", "curve")},
               goal="coreset + DRO within 10 % of the converged full FD at >= 3x less training, over 3 seeds",
               goal_met=bool(sp is not None and sp >= 3 and len(seeds_done) >= 3 and full[0]["converged"]),
               rows=R)
    r2 = lambda v: "none" if v is None else f"{v:.2f}"
    if ext:   # the same matched-FD rule against the probe's longer-trained seed-0 model (its CPU from step 0 as full cost)
        res["speedup_at_matched_fd_vs_extension"] = {
            m: dict(zip(("speedup", "fraction"), best(m, ext["fd"], ext["cpu_train"]))) for m in ("random", "gaussian", "gaussian+dro")}
    ext_txt = "" if ext is None else (
        f"Convergence probe (seed 0 only, a copy of its full run trained on from S): at {ext['steps']} steps FD "
        f"{ext['fd']:.3f}, {ext['change_last_quarter']:+.1%} over its last quarter ({'flat' if ext['converged'] else 'not flat'} "
        f"by the {S['converge_tol']:.0%} rule), precision {ext['precision']:.2f}, recall {ext['recall']:.2f}, {ext['cpu_train']:.0f} s "
        f"CPU from step 0; the column 'FD / full seed 0 at {ext['steps']}' compares each row with it. Against it, by the same "
        f"10 % rule: " + "; ".join(f"{m} {r2(v['speedup'])}" + (f" (p={v['fraction']})" if v['fraction'] else "")
                                   for m, v in res["speedup_at_matched_fd_vs_extension"].items()) + ". ")
    vae_txt = (f"VAE (reported apart, shared by every run): {vae['steps']} steps, {vae['cpu_train']:.0f} s CPU training + "
               f"{vae['cpu_encode']:.0f} s encoding the data once; test reconstruction MSE {vae['test_mse']:.4f}." if vae else "")
    notes = (f"Converged full-data latent DM: S = {S_} steps ({'converged' if full[0]['converged'] else 'NOT converged'}: FD change "
             f"over the last quarter {'<' if full[0]['converged'] else '>='} {S['converge_tol']:.0%}), mean FD {fd_full:.3f} over seeds "
             f"{seeds_done}, {cpu_full:.0f} s CPU ({wall_full:.0f} s wall) each; precision {r2(res['full']['precision'])}, recall "
             f"{r2(res['full']['recall'])} (k=3, 500 samples against 500 fixed real training images; rows without them "
             f"ran before they were added). Speed-up at matched FD (mean FD <= 1.10 x full), "
             f"coreset + DRO: {r2(sp)} (p={bp}); coreset alone: {r2(sp_g)} (p={bp_g}); random: {r2(sp_r)} (p={bp_r}). "
             f"'speed-up vs full curve at same FD': the full run's CPU seconds to reach the row's mean FD (read from the full "
             f"runs' mean FD curve) over the row's cost; empty where the full run never got that low by S. "
             f"Goal (>= 3x at matched FD against a converged full run, 3 seeds): {'met' if res['goal_met'] else 'NOT met'}"
             f"{'' if full[0]['converged'] else ' (the full run at S has not converged, so the matched-FD figures above compare with an under-trained model)'}. "
             f"{ext_txt}{vae_txt} "
             f"FD features: {S['classifier']}, test accuracy {'%.1f %%' % (100 * Setup_acc[0]) if Setup_acc else 'n/a'}; FD of the real test images to the train "
             f"images {'%.3f' % Setup_acc[1] if Setup_acc else 'n/a'} (a floor). "
             f"CPU seconds at 1 torch thread (process_time); the machine was shared with other jobs.")
    res["feature_classifier_test_acc"] = Setup_acc[0] if Setup_acc else None
    res["fd_real_test_vs_train"] = Setup_acc[1] if Setup_acc else None
    write("latent_pruning_constant", res, "Pruning then reweighting a latent DM (VAE + DiT) on MNIST 16x16, constant-LR protocol (CPU; never converged)",
          table or [{"method": "-", "note": "no subset run yet"}], notes)


Setup_acc: list = []


# ---------------------------------------------------------------- protocol 'wsd'
WSD_DOC = """Protocol 'wsd' (issue 19, third try; rows in results/latent_pruning.jsonl). The constant-LR full run never
flattened: its FD fell by ~8 % over each last quarter up to 16000 steps (1.336 at 7200, 1.182 at 9600, 1.086 at 12000,
1.001 at 16000: a power law in the steps, so a 2 % rule on a constant-LR curve would not fire within any CPU budget).
Every budget now ends with its own learning-rate decay (warmup-stable-decay: constant, then linearly to 0 over the last
20 % of the steps after warm-up; Haegele et al. 2024), the standard way to compare budgets without a fixed horizon:
- full data, seed 0: budgets B whose decay starts at a checkpoint s0 of the constant-LR full run (B = w + (s0 - w) / 0.8
  for s0 in BRANCH, w the warm-up): that run's checkpoint at s0 plus a decay of 0.2 (B - w) steps
  (Trainer(init_from=..., schedule='wsd'): the same weights as a 'wsd' run of B steps from step 0, tested bit for bit).
  S = the first B whose FD is within converge_tol (2 %) of the previous rung's (each rung 1.2-1.33x the previous: the
  'last quarter' rule, on budgets); the constant run is extended (a constant-LR branch of its own) where s0 needs it;
- seeds 1, 2: the full run at S the same way;
- every seed, each p in fractions: random / coreset / coreset + DRO trained 'wsd' for p * S steps from scratch, and the
  full data trained 'wsd' for p * S steps (the full data at the same cost, with its own decay);
- costs: CPU of the constant run to s0 + the decay (CPU seconds at 1 thread); speed-up at matched FD as in the constant
  protocol (mean FD within 10 % of the full FD at S, 3 seeds). The DRO reference is the seed's full run at S."""
BRANCH = [7200, 9600, 12000, 16000, 20000, 24000, 32000]
TRUNK_STEPS = 64000        # names the constant-LR extension runs (constant LR: the total does not change the schedule)
TRUNK_CHUNK = 4000         # steps between the extension's checkpoints


def wsd_budget(s0: int, w: int) -> int:
    "The 'wsd' budget whose decay starts at step s0 (w: warm-up steps), in exact arithmetic."
    from fractions import Fraction
    from effdata.train import WSD_DECAY
    return w + math.ceil((s0 - w) / (1 - Fraction(WSD_DECAY).limit_denominator(1000)))


def drop_unrecorded(run: Path, spent: list[dict]):
    "Remove the run folder's checkpoints whose CPU `spent` has no record of (cut off by a kill: their cost is unknown)."
    import shutil
    for c in (run / "checkpoints").glob("step-*") if (run / "checkpoints").exists() else []:
        if int(c.name.split("-")[-1]) not in {x["step"] for x in spent}: shutil.rmtree(c)


def fit_in_chunks(tr, side: Path, spent: list[dict], stop: int, chunk: int, label: str) -> tuple[float, float]:
    """Train `tr` to step `stop` (or its end) in chunks of `chunk` steps; after each, its checkpoint and the CPU / wall
    seconds so far (appended to `spent`, saved to `side`): a kill loses one chunk. Returns the CPU and wall seconds."""
    cpu, wall = (spent[-1]["cpu"], spent[-1]["wall"]) if spent else (0.0, 0.0)
    while tr.step < min(stop, tr.total_steps):
        with Clock() as c: tr.fit(max_steps=min(stop, tr.step + chunk))
        cpu, wall = cpu + c.cpu, wall + c.wall
        spent.append(dict(step=tr.step, cpu=cpu, wall=wall)); side.write_text(json.dumps(spent))
        print(f"  {label}: step {tr.step} of {min(stop, tr.total_steps)} ({cpu:.0f} s CPU from step 0)", flush=True)
    return cpu, wall


def trunk_ckpt(st: Setup, seed: int, s0: int, work: Path) -> tuple[Path, float, float]:
    """A checkpoint of seed's constant-LR full run at step s0, with the CPU and wall seconds it took from step 0. Looks in
    the full run, seed 0's probe copy and the extension run; else extends (a constant-LR branch off the newest one)."""
    import shutil
    srcs = [(work / f"full{seed}", work / f"full{seed}.curve.json"), (work / f"trunk{seed}", work / f"trunk{seed}.curve.json")]
    if seed == 0: srcs.insert(1, (work / "full0_ext", work / "full0_ext.curve.json"))
    have = []
    for run, side in srcs:
        if not side.exists(): continue
        for c in json.loads(side.read_text()):
            ck = run / "checkpoints" / f"step-{c['step']:09d}"
            if (ck / "meta.json").exists(): have.append((c["step"], ck, c["cpu"], c["wall"]))
    if (hit := [h for h in have if h[0] == s0]): return hit[0][1:]
    below = [h for h in have if h[0] < s0]
    if not below: sys.exit(f"seed {seed}: no constant-LR checkpoint below step {s0} to extend (run the constant protocol first)")
    step, ck, cpu, wall = max(below)
    run, side = work / f"trunk{seed}", work / f"trunk{seed}.curve.json"
    curve = json.loads(side.read_text()) if side.exists() else []
    drop_unrecorded(run, curve)
    if not curve: shutil.rmtree(run, ignore_errors=True)
    init = json.loads((run / "config.json").read_text())["init_from"] if curve else str(ck)
    tr = trainer(st, seed, TRUNK_STEPS, run=run, resume=bool(curve), schedule="constant", init_from=init)
    if not curve: curve.append(dict(step=step, cpu=cpu, wall=wall))     # the branch point's cost from step 0
    cpu, wall = fit_in_chunks(tr, side, curve, s0, TRUNK_CHUNK, f"constant-LR run of seed {seed} extended")
    return run / "checkpoints" / f"step-{s0:09d}", cpu, wall


def full_wsd(st: Setup, seed: int, s0: int, work: Path) -> dict:
    "The full-data 'wsd' run whose decay starts at the constant run's step s0 (a row of kind 'full_wsd')."
    B = wsd_budget(s0, st.cfg.warmup_steps)
    if (r := done("full_wsd", seed=seed, steps=B)): return r
    ck, cpu0, wall0 = trunk_ckpt(st, seed, s0, work)
    run = work / f"wsd{seed}_{B}"
    if (run / "checkpoints").exists() and not (run / "cost.json").exists():
        import shutil; shutil.rmtree(run)                               # a decay killed before its cost was saved
    tr = trainer(st, seed, B, run=run, resume=(run / "checkpoints").exists(), schedule="wsd", init_from=str(ck))
    if not (run / "cost.json").exists():
        with Clock() as c: tr.fit()
        (run / "cost.json").write_text(json.dumps(dict(cpu=c.cpu, wall=c.wall)))
    cost = json.loads((run / "cost.json").read_text())
    sc = st.score(tr)
    print(f"  full seed {seed}, wsd budget {B} (decay from {s0}): FD {sc['fd']:.3f}", flush=True)
    return add(dict(kind="full_wsd", seed=seed, steps=B, branch=s0, **sc, cpu_train=cpu0 + cost["cpu"],
                    wall_train=wall0 + cost["wall"], cpu_decay=cost["cpu"], run=run.name))


def dynamic_wsd(st: Setup, seed: int, S_: int, work: Path, chunk: int = 4000) -> dict:
    """The field's cheap standard, as in the pixel-space benchmark: InfoBatch-style dynamic pruning of the full data for
    the epochs of S steps (each epoch drops a random `infobatch_prune` share of the below-mean-loss samples and rescales
    the rest; the last 1 - `infobatch_anneal` of the epochs use all data), with its own 'wsd' decay (on the full-data
    step count); a row of kind 'dynamic_wsd'. Checkpoints every `chunk` steps, with the CPU spent so far beside them,
    so a kill loses at most one chunk."""
    import shutil
    from effdata.latent import LatentDDPMTrainer
    from effdata.train import InfoBatch
    if (r := done("dynamic_wsd", seed=seed, steps_full=S_)): return r
    epochs = max(1, round(S_ * st.cfg.batch_size / len(st.train)))
    run, side = work / f"dyn{seed}_{S_}", work / f"dyn{seed}_{S_}.cost.json"
    spent = json.loads(side.read_text()) if side.exists() else []
    drop_unrecorded(run, spent)
    if not spent: shutil.rmtree(run, ignore_errors=True)
    tr = LatentDDPMTrainer(st.train, st.vae, st.cfg, latents=st.z, epochs=epochs, seed=seed, run=run, resume=bool(spent),
                           dynamic=InfoBatch(S["infobatch_prune"], S["infobatch_anneal"]), schedule="wsd",
                           ckpt_every=10**9, progress=False)
    cpu, wall = fit_in_chunks(tr, side, spent, 10**12, chunk, f"dynamic seed {seed}")
    sc = st.score(tr)
    print(f"  dynamic seed {seed} ({epochs} epochs, {tr.step} steps): FD {sc['fd']:.3f}", flush=True)
    return add(dict(kind="dynamic_wsd", seed=seed, steps_full=S_, epochs=epochs, steps=tr.step, **sc, cpu_train=cpu,
                    wall_train=wall, prune=S["infobatch_prune"], anneal=S["infobatch_anneal"], run=run.name))


def wsd_S(R: list[dict]) -> tuple[int | None, bool]:
    "S from seed 0's 'wsd' ladder: the first budget within converge_tol of the previous one (or the last, unconverged)."
    lad = sorted((r for r in R if r["kind"] == "full_wsd" and r["seed"] == 0), key=lambda r: r["steps"])
    for a, b in zip(lad, lad[1:]):
        if abs(b["fd"] - a["fd"]) / a["fd"] < S["converge_tol"]: return b["steps"], True
    return (lad[-1]["steps"] if lad else None), False


FD_DRAWS = (1000, 1001, 1002, 1003)


def fd_spread(st: Setup, work: Path) -> list[dict]:
    """Is the step that fixed S bigger than the FD estimator's own noise? The two rungs that decided S (seed 0) are
    scored again with other sampler draws (FD_DRAWS; every row uses draw 1000): rows of kind 'fd_draws'."""
    lad = sorted((r for r in rows() if r["kind"] == "full_wsd" and r["seed"] == 0), key=lambda r: r["steps"])
    S_, _ = wsd_S(rows())
    i = next(k for k, r in enumerate(lad) if r["steps"] == S_)
    out = []
    for r in lad[max(0, i - 1):i + 1]:
        if (d := done("fd_draws", seed=0, steps=r["steps"])): out.append(d); continue
        run = work / r["run"]
        tr = trainer(st, 0, r["steps"], run=run, resume=True, schedule="wsd",
                     init_from=json.loads((run / "config.json").read_text())["init_from"])
        fds = [st.fd(tr, seed=k) for k in FD_DRAWS]
        print(f"  full seed 0, wsd budget {r['steps']}: FD over draws {FD_DRAWS}: {', '.join(f'{f:.3f}' for f in fds)}", flush=True)
        out.append(add(dict(kind="fd_draws", seed=0, steps=r["steps"], draws=list(FD_DRAWS), fds=fds,
                            mean=float(np.mean(fds)), std=float(np.std(fds, ddof=1)))))
    return out


def run_wsd(st: Setup, work: Path, seeds: list[int], fractions: list[float] | None = None):
    "Seed 0's ladder (which fixes S), then every seed's rows; `fractions`: only these kept fractions (one seed, two processes)."
    if 0 in seeds or wsd_S(rows())[0] is None:
        for s0 in BRANCH:
            full_wsd(st, 0, s0, work)
            if wsd_S(rows())[1]: break
    S_, conv = wsd_S(rows())
    s0 = next(b for b in BRANCH if wsd_budget(b, st.cfg.warmup_steps) == S_)
    print(f"S = {S_} ({'converged' if conv else 'NOT converged: the ladder ran out'})", flush=True)
    for seed in seeds:
        full = full_wsd(st, seed, s0, work)
        for p in fractions or S["fractions"]:
            if done("full_small_wsd", seed=seed, fraction=p): continue
            tr = trainer(st, seed, max(1, round(p * S_)), schedule="wsd")
            with Clock() as c: tr.fit()
            add(dict(kind="full_small_wsd", seed=seed, fraction=p, steps=tr.step, **st.score(tr), cpu_train=c.cpu, wall_train=c.wall))
        subset_runs(st, seed, S_, work, kind="subset_wsd", ref=work / full["run"], schedule="wsd", fractions=fractions)
        if fractions: continue
        dynamic_wsd(st, seed, S_, work)
        summarise_wsd()


def summarise_wsd():
    R = rows()
    S_, conv = wsd_S(R)
    if S_ is None: print("no 'wsd' full run yet"); return
    mean = lambda xs: float(np.mean(xs)) if xs else None
    full = [r for r in R if r["kind"] == "full_wsd" and r["steps"] == S_]
    vae = next(({k: v for k, v in r.items() if k != "kind"} for r in R if r["kind"] == "vae"), None)
    fd_full, cpu_full = mean([r["fd"] for r in full]), mean([r["cpu_train"] for r in full])
    table, agg = [], {}
    for p in S["fractions"]:
        for m in ("full", "random", "gaussian", "gaussian+dro"):
            rs = [r for r in R if (r["kind"] == "full_small_wsd" and m == "full" or r["kind"] == "subset_wsd" and r["method"] == m)
                  and r["fraction"] == p]
            if not rs: continue
            cost = mean([r["cpu_train"] + r.get("cpu_selection", 0.0) + r.get("cpu_proxy", 0.0) for r in rs])
            wall = mean([r["wall_train"] + r.get("wall_selection", 0.0) + r.get("wall_proxy", 0.0) for r in rs])
            a = agg[(p, m)] = dict(wall=wall, fd=mean([r["fd"] for r in rs]), fd_std=float(np.std([r["fd"] for r in rs])), cost=cost, n=len(rs),
                                   precision=mean([r["precision"] for r in rs]), recall=mean([r["recall"] for r in rs]),
                                   steps=rs[0]["steps"])
            table.append({"method": "full data (same steps)" if m == "full" else m, "p": p, "steps": a["steps"], "seeds": a["n"],
                          "FD mean": a["fd"], "FD std": a["fd_std"], "FD / full(S)": a["fd"] / fd_full,
                          "precision": a["precision"], "recall": a["recall"], "CPU s (train+sel+DRO)": cost,
                          "wall s": wall, "full cost / row cost": cpu_full / cost})
    dyn = [r for r in R if r["kind"] == "dynamic_wsd" and r["steps_full"] == S_]
    if dyn:                                    # InfoBatch-style dynamic pruning for the full data's epochs
        a = agg[(1.0, "dynamic")] = dict(fd=mean([r["fd"] for r in dyn]), fd_std=float(np.std([r["fd"] for r in dyn])),
                                         cost=mean([r["cpu_train"] for r in dyn]), wall=mean([r["wall_train"] for r in dyn]),
                                         n=len(dyn), precision=mean([r["precision"] for r in dyn]),
                                         recall=mean([r["recall"] for r in dyn]), steps=round(mean([r["steps"] for r in dyn])),
                                         epochs=dyn[0]["epochs"])
        table.append({"method": f"dynamic (InfoBatch {S['infobatch_prune']:g}, anneal {S['infobatch_anneal']:g})", "p": 1.0,
                      "steps": a["steps"], "seeds": a["n"], "FD mean": a["fd"], "FD std": a["fd_std"], "FD / full(S)": a["fd"] / fd_full,
                      "precision": a["precision"], "recall": a["recall"], "CPU s (train+sel+DRO)": a["cost"],
                      "wall s": a["wall"], "full cost / row cost": cpu_full / a["cost"]})
    table.append({"method": "full data (S)", "p": 1.0, "steps": S_, "seeds": len(full), "FD mean": fd_full,
                  "FD std": float(np.std([r["fd"] for r in full])), "FD / full(S)": 1.0,
                  "precision": mean([r["precision"] for r in full]), "recall": mean([r["recall"] for r in full]),
                  "CPU s (train+sel+DRO)": cpu_full, "wall s": mean([r["wall_train"] for r in full]), "full cost / row cost": 1.0})
    def best(m):
        hits = [(cpu_full / agg[(p, m)]["cost"], p) for p in S["fractions"] if (p, m) in agg
                and agg[(p, m)]["n"] == len(full) and agg[(p, m)]["fd"] <= fd_full * (1 + S["match_tolerance"])]
        return max(hits) if hits else (None, None)
    sp = {m: dict(zip(("speedup", "fraction"), best(m))) for m in ("random", "gaussian", "gaussian+dro", "full")}
    d = agg.get((1.0, "dynamic"))
    sp["dynamic"] = (dict(speedup=cpu_full / d["cost"], fraction=1.0) if d and d["n"] == len(full)
                     and d["fd"] <= fd_full * (1 + S["match_tolerance"]) else dict(speedup=None, fraction=None))
    seeds = sorted({r["seed"] for r in full})
    lad = sorted((r for r in R if r["kind"] == "full_wsd" and r["seed"] == 0), key=lambda r: r["steps"])
    draws = sorted((r for r in R if r["kind"] == "fd_draws"), key=lambda r: r["steps"])
    res = dict(protocol="wsd (every budget with its own LR decay; converged by budget)", doc=WSD_DOC, seeds=seeds,
               settings=S, branch_points=BRANCH, machine=machine(S["threads"]),
               full=dict(steps=S_, converged=conv, fd=fd_full, cpu_train=cpu_full,
                         ladder_seed0=[{k: r[k] for k in ("steps", "branch", "fd", "precision", "recall", "cpu_train")} for r in lad],
                         fd_draws_seed0=[{k: r[k] for k in ("steps", "draws", "fds", "mean", "std")} for r in draws]),
               speedup_at_matched_fd=sp["gaussian+dro"]["speedup"], speedup_best=dict(method="gaussian+dro", fraction=sp["gaussian+dro"]["fraction"]),
               speedup_at_matched_fd_by_method=sp,
               fd_ratio_vs_full_same_steps={m: {str(p): agg[(p, m)]["fd"] / agg[(p, "full")]["fd"] for p in S["fractions"]
                                                if (p, m) in agg and (p, "full") in agg} for m in ("random", "gaussian", "gaussian+dro")},
               fd_ratio_vs_random={m: {str(p): agg[(p, m)]["fd"] / agg[(p, "random")]["fd"] for p in S["fractions"]
                                       if (p, m) in agg and (p, "random") in agg} for m in ("gaussian", "gaussian+dro")},
               fd_ratio_vs_dynamic={m: {str(p): agg[(p, m)]["fd"] / d["fd"] for p in S["fractions"] if (p, m) in agg}
                                    for m in ("random", "gaussian", "gaussian+dro")} if d else None,
               dynamic=None if not d else dict(fd=d["fd"], fd_std=d["fd_std"], steps=d["steps"], seeds=d["n"], cpu_train=d["cost"],
                                               speedup=cpu_full / d["cost"], prune=S["infobatch_prune"], anneal=S["infobatch_anneal"]),
               dro_fd_ratio={str(p): agg[(p, "gaussian+dro")]["fd"] / agg[(p, "gaussian")]["fd"] for p in S["fractions"]
                             if (p, "gaussian+dro") in agg and (p, "gaussian") in agg},
               dataset="mnist (17,435-image train subset), downsampled 28->16 (antialiased bilinear)",
               vae=vae, feature_classifier=S["classifier"], feature_classifier_test_acc=Setup_acc[0] if Setup_acc else None,
               fd_real_test_vs_train=Setup_acc[1] if Setup_acc else None,
               goal="coreset + DRO within 10 % of the converged full FD at >= 3x less training, over 3 seeds",
               goal_met=bool(conv and len(seeds) >= 3 and (sp["gaussian+dro"]["speedup"] or 0) >= 3), rows=R)
    r2 = lambda v: "none" if v is None else f"{v:.2f}"
    notes = (f"Full data: S = {S_} steps ({'converged' if conv else 'NOT converged'}: seed 0's ladder "
             + ", ".join(f"{r['steps']}: {r['fd']:.3f}" for r in lad) + f"), mean FD {fd_full:.3f} over seeds {seeds}, "
             f"{cpu_full:.0f} s CPU each. "
             + ("" if len(draws) < 2 else "FD of the rungs that fixed S over sampler draws " + str(draws[0]["draws"]) + ": "
                + ", ".join(f"{r['steps']}: {r['mean']:.3f} +- {r['std']:.3f}" for r in draws)
                + f" (change in the mean over draws {100 * (draws[-1]['mean'] / draws[-2]['mean'] - 1):+.1f} %). ")
             + "Speed-up at matched FD (mean FD <= 1.10 x full, all seeds): "
             + "; ".join(f"{m} {r2(v['speedup'])}" + (f" (p={v['fraction']})" if v["fraction"] else "") for m, v in sp.items())
             + f". Goal: {'met' if res['goal_met'] else 'NOT met'}. "
             + ("" if not d else f"Dynamic pruning (InfoBatch-style, the field's cheap standard): the full data's "
                f"{d['epochs']} epochs (S steps) with a random {S['infobatch_prune']:g} of the below-mean-loss "
                f"samples dropped each epoch (all data in the last {1 - S['infobatch_anneal']:.1%} of the epochs), its own decay: "
                f"{d['steps']} steps on average, FD {d['fd']:.3f} ({d['fd'] / fd_full:.2f} x full), {cpu_full / d['cost']:.2f}x less CPU, "
                f"{d['n']} seed{'s' if d['n'] > 1 else ''}. ")
             + ("" if not vae else f"VAE (reported apart, shared by every run; trained once in the constant protocol): "
                f"{vae['steps']} steps, {vae['cpu_train']:.0f} s CPU training + {vae['cpu_encode']:.0f} s encoding the data once; "
                f"test reconstruction MSE {vae['test_mse']:.4f}. ")
             + (f"FD features: {S['classifier']}, test accuracy {100 * Setup_acc[0]:.1f} %; FD of the real test images to the "
                f"train images {Setup_acc[1]:.3f} (a floor). " if Setup_acc else "")
             + "Costs: CPU seconds at 1 torch thread (process_time), wall seconds beside them; the 2-core machine was shared "
               "with other runs. " + WSD_DOC.replace(chr(10), " "))
    write("latent_pruning", res, "Pruning then reweighting a latent DM (VAE + DiT), MNIST 16x16: every budget with its own LR decay (CPU)",
          table, notes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", action="store_true", help="only rewrite the protocol's result .json/.md from its rows")
    ap.add_argument("--work", default=str(Path(__file__).resolve().parent / "runs" / "latent_bench"),
                    help="folder for the VAE, caches and run folders (git-ignored)")
    ap.add_argument("--protocol", choices=["constant", "wsd"], default="wsd",
                    help="wsd: every budget with its own decay (the headline, latent_pruning.*; see WSD_DOC); constant: "
                         "the first, constant-LR protocol (latent_pruning_constant.*)")
    ap.add_argument("--seeds", type=int, nargs="+", default=S["seeds"])
    ap.add_argument("--fractions", type=float, nargs="+", default=None, choices=S["fractions"],
                    help="protocol wsd: only the rows at these kept fractions (to split a seed over two processes)")
    ap.add_argument("--fd-draws", action="store_true",
                    help="protocol wsd: only score the two rungs that fixed S with other sampler draws (FD noise)")
    ap.add_argument("--dynamic", action="store_true",
                    help="protocol wsd: only the InfoBatch-style dynamic-pruning rows of --seeds (the field's cheap standard)")
    ap.add_argument("--extend", type=int, default=None, metavar="STEPS",
                    help="only the convergence probe: seed 0's full run continued to STEPS (a copy of its run folder)")
    args = ap.parse_args()
    torch.set_num_threads(S["threads"])
    work = Path(args.work); work.mkdir(parents=True, exist_ok=True)
    if (work / "clf_acc.json").exists(): Setup_acc[:] = json.loads((work / "clf_acc.json").read_text())
    if args.protocol == "wsd":
        if not done("vae") and (work / "vae").exists():            # the VAE the constant protocol trained (and timed)
            if (v := Rows(CONSTANT_ROWS).first(kind="vae")): add(v)
        if args.report: summarise_wsd(); print((RESULTS / "latent_pruning.md").read_text()); return
        st = Setup(work)
        Setup_acc[:] = [st.clf_acc, st.fd_real]
        if args.fd_draws: fd_spread(st, work); summarise_wsd(); return
        if args.dynamic:
            S_, _ = wsd_S(rows())
            if S_ is None: sys.exit("run seed 0's ladder first (python bench/latent_pruning.py --seeds 0): it decides S")
            for seed in args.seeds: dynamic_wsd(st, seed, S_, work); summarise_wsd()
            return
        run_wsd(st, work, args.seeds, args.fractions)
        if args.fractions: return
        print((RESULTS / "latent_pruning.md").read_text()); return
    global ROWS
    ROWS = CONSTANT_ROWS
    if args.report: summarise(); print((RESULTS / "latent_pruning_constant.md").read_text()); return
    st = Setup(work)
    (work / "clf_acc.json").write_text(json.dumps([st.clf_acc, st.fd_real])); Setup_acc[:] = [st.clf_acc, st.fd_real]
    print(f"feature net test accuracy {st.clf_acc:.4f}", flush=True)
    if args.extend is not None: extend_full(st, work, args.extend); summarise(); return
    S_ = (done("full", seed=0) or {}).get("steps")        # seed 0's full run fixes S for every other seed
    if S_ is None and args.seeds[0] != 0: sys.exit("run seed 0 first: its full run decides the step count S")
    for seed in args.seeds:
        r = full_run(st, seed, work, S_)
        full_pr(st, seed, work, r)
        S_ = S_ or r["steps"]
        subset_runs(st, seed, S_, work)
        summarise()
    summarise()
    print((RESULTS / "latent_pruning_constant.md").read_text())


if __name__ == "__main__":
    main()
