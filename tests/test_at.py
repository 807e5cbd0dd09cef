"""effdata.at: objectives, BulletTrain, last-layer gradients, subset strategies, ATTrainer on real data."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effdata.at import (BOUNDARY, MART, OUTLIER, ROBUST, TRADES, AdvGlister, AdvGradMatch, ATTrainer, BulletTrain, FastAT,
                        PGDAT, RandomSubset, StaticScore, _outer, evaluate_robustness, get_objective, get_strategy,
                        last_layer_grads, layer_inputs, logit_grads, nonneg_omp)
from effdata.models import SmallCNN
from effdata.train import Processes


@pytest.fixture(scope="module")
def cifar(data_root):
    from effdata.data import load_dataset
    return load_dataset("cifar10", root=data_root).subset(range(400))


def small(seed=0, width=8):
    torch.manual_seed(seed)
    return SmallCNN(3, 10, width=width)


def test_objective_losses_by_hand():
    zc = torch.tensor([[1.0, 0.0, 0.0]]); za = torch.tensor([[0.0, 1.0, 0.0]]); y = torch.tensor([0])
    p, q = F.softmax(zc, 1), F.softmax(za, 1)
    kl = (p * (p.log() - q.log())).sum()
    ce_c, ce_a = F.cross_entropy(zc, y), F.cross_entropy(za, y)
    assert torch.allclose(PGDAT().from_logits(None, za, y), ce_a[None])
    assert torch.allclose(TRADES(beta=6).from_logits(zc, za, y), (ce_c + 6 * kl)[None])
    mart = ce_a - torch.log(1.0001 - q[0, 1]) + 6 * kl * (1.0000001 - p[0, 0])
    assert torch.allclose(MART(beta=6).from_logits(zc, za, y), mart[None], atol=1e-6)
    assert FastAT(eps=0.1).alpha == pytest.approx(0.125)


@pytest.mark.parametrize("obj", [PGDAT(), TRADES(), MART()], ids=lambda o: o.name)
def test_last_layer_grads_match_autograd(obj):
    net = small().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(5, 3, 32, 32, generator=g); xa = (x + 0.05 * torch.rand(x.shape, generator=g)).clamp(0, 1)
    y = torch.tensor([0, 3, 3, 7, 9])
    hc, zc = layer_inputs(net, x); ha, za = layer_inputs(net, xa)
    gc, ga, _ = logit_grads(obj, zc if obj.needs_clean else None, za, y)
    mine = _outer(ga, ha) + (_outer(gc, hc) if gc is not None else 0)
    for i in range(5):
        net.zero_grad()
        obj.from_logits(net(x[i:i+1]) if obj.needs_clean else None, net(xa[i:i+1]), y[i:i+1]).sum().backward()
        ref = torch.cat([net.head.weight.grad, net.head.bias.grad[:, None]], 1).flatten()
        assert torch.allclose(mine[i], ref, atol=1e-5)


def test_nonneg_omp():
    g = torch.Generator().manual_seed(0)
    G = torch.randn(80, 30, generator=g, dtype=torch.float64)
    t = 3 * G[5] + 1 * G[40] + 0.5 * G[71]
    idx, w = nonneg_omp(G, t, 6, lam=1e-9)
    assert set(idx[:3].tolist()) == {5, 40, 71}
    assert np.allclose(sorted(w[:3]), [0.5, 1.0, 3.0], atol=1e-4)
    idx, w = nonneg_omp(G, -G[0] - G[1], 10, lam=0.5)      # nothing correlates positively with some targets
    assert (w >= 0).all() and len(idx) <= 10


class _Fake:
    "The attributes the strategies read from a trainer."
    def __init__(self, model, pool, val=None, seed=0, lr=0.1):
        self.model, self.pool, self.val, self.seed = model, pool, val, seed
        self.objective, self.select_batch_size, self.batch_size, self.device = PGDAT(steps=1), 200, 32, torch.device("cpu")
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        self.processes = Processes()          # one process (the scale-out tests run several)


@pytest.mark.parametrize("strategy", [RandomSubset(), StaticScore("el2n"), StaticScore("loss"), AdvGradMatch(),
                                      AdvGradMatch(per="batch"), AdvGradMatch(valid=True), AdvGlister()], ids=repr)
def test_strategies_pick_exactly_k_and_repeat(strategy, cifar):
    tr = _Fake(small(), cifar.subset(range(300)), cifar.subset(range(300, 400)))
    idx, w = strategy.select(tr, 90, 0)
    assert len(idx) == 90 and len(np.unique(idx)) == 90 and idx.min() >= 0 and idx.max() < 300
    assert len(w) == 90 and (np.asarray(w) > 0).all()
    if not (isinstance(strategy, AdvGradMatch) and strategy.per == "batch"):
        counts = np.bincount(tr.pool.targets.numpy()[idx], minlength=10)
        assert counts.max() - counts.min() <= 1 + np.ptp(np.bincount(tr.pool.targets.numpy(), minlength=10)) * 0.3 + 1
    idx2, w2 = type(strategy)(**{k: v for k, v in vars(strategy).items() if not k.startswith("_") and k != "needs_validation"}).select(tr, 90, 0)
    assert np.array_equal(np.sort(idx), np.sort(idx2))


def test_glister_first_chunk_is_top_gain(cifar):
    tr = _Fake(small(), cifar.subset(range(300)), cifar.subset(range(300, 400)))
    s = AdvGlister(eta=0.1, chunks=1, per_class=False)
    idx, _ = s.select(tr, 30, 0)
    P = last_layer_grads(tr.objective, tr.model, tr.pool, batch_size=200, seed=0)
    V = last_layer_grads(tr.objective, tr.model, tr.val, batch_size=200, seed=0)
    gain = (P["grads"] @ V["grads"].mean(0)).numpy()
    assert set(idx.tolist()) == set(np.argsort(-gain)[:30].tolist())


def test_bullettrain_groups_and_budgets():
    class Lin(nn.Module):
        def __init__(self): super().__init__(); self.f = nn.Linear(4, 3, bias=False)
        def forward(self, x): return self.f(x.flatten(1))
    m = Lin()
    with torch.no_grad(): m.f.weight.copy_(torch.tensor([[10., 0, 0, 0], [0, 10., 0, 0], [0, 0, 10., 0]]))
    x = torch.tensor([[1., 0, 0, 0], [0, 1., 0, 0], [0.5, 0.45, 0, 0]]).view(3, 1, 2, 2)
    y = torch.tensor([0, 0, 0])             # robust, outlier, boundary
    bt = BulletTrain("fixed", robust_margin=0.5)
    assert bt.groups(m, x, y).tolist() == [ROBUST, OUTLIER, BOUNDARY]
    xa, g = bt.perturb(PGDAT(eps=0.1, alpha=0.05, steps=2), m, x, y)
    assert torch.equal(xa[1], x[1])                      # outliers are not attacked
    assert (xa[0] != x[0]).any() and (xa[2] != x[2]).any()
    assert (xa - x).abs().max() <= 0.1 + 1e-6
    with pytest.raises(ValueError, match="robust_margin=2"):
        BulletTrain("fixed", robust_margin=2)
    with pytest.raises(ValueError, match="rule=0.5"):
        BulletTrain(0.5)


def test_bullettrain_paper_rule_quantiles_and_outliers():
    # margins of the hand-made batch (label 0): 0.9997, 0.864, 0.083, -0.178, -0.9997, -0.9997, 0.987, 0.035
    z = torch.tensor([[9., 0, 0], [3, 0, 0], [1, 0.8, 0], [0, 0.5, 0], [0, 9, 0], [0, 0, 9], [5, 0, 0], [0.2, 0, 0.1]])
    y = torch.zeros(8, dtype=torch.long)
    bt = BulletTrain(robust_share=0.25, outlier_share=0.25)
    assert bt.groups_from_logits(z, y).tolist() == [ROBUST, BOUNDARY, BOUNDARY, BOUNDARY, OUTLIER, OUTLIER, ROBUST, BOUNDARY]
    # a quantile tail only counts when its sign agrees: all correct -> no outliers; all wrong -> no robust
    assert OUTLIER not in bt.groups_from_logits(z[[0, 1, 2, 6, 7]], y[:5]).tolist()
    wrong = (z.argmax(1) + 1) % 3
    assert ROBUST not in bt.groups_from_logits(z, wrong).tolist()
    assert BulletTrain().budgets() == {OUTLIER: "cheap", ROBUST: "cheap", BOUNDARY: "full"}
    assert BulletTrain("fixed").budgets()[OUTLIER] == "none"
    assert BulletTrain().warmup == 1 and BulletTrain("fixed").warmup == 0
    # outliers get the cheap attack: their images move, within eps
    lin = nn.Linear(12, 3, bias=False)
    with torch.no_grad(): lin.weight.copy_(torch.eye(3, 12) * 10)
    net = nn.Sequential(nn.Flatten(), lin)
    x = torch.zeros(4, 3, 2, 2); x[0, 0, 0, 0] = 1; x[1, 0, 0, 1] = 1; x[2, 0, 0, 0] = 0.5; x[2, 0, 0, 1] = 0.45
    x[3, 0, 0, :] = 0.3; x[3, 0, 1, 0] = 0.3
    yy = torch.zeros(4, dtype=torch.long)
    xa, g = BulletTrain(robust_share=0.25, outlier_share=0.25).perturb(PGDAT(eps=0.1, alpha=0.05, steps=2), net, x, yy, epoch=1)
    assert g.tolist() == [ROBUST, OUTLIER, BOUNDARY, BOUNDARY]
    assert (xa != x).flatten(1).any(1).all() and (xa - x).abs().max() <= 0.1 + 1e-6
    _, g0 = BulletTrain(warmup=2).perturb(PGDAT(eps=0.1, alpha=0.05, steps=2), net, x, yy, epoch=1)
    assert g0.tolist() == [BOUNDARY] * 4                   # warm-up: full attacks for everyone
    with pytest.raises(ValueError, match="cannot overlap"):
        BulletTrain(robust_share=0.7, outlier_share=0.4)


def test_bullettrain_in_training_warmup_then_groups(cifar, tmp_path):
    from effdata.core import read_metrics
    t = ATTrainer(small(), cifar.subset(range(128)), objective="pgd", steps=2, bullettrain="paper", epochs=2, batch_size=64,
                  lr=0.05, progress=False, seed=0, log_every=1, run=tmp_path / "bt").fit()
    shares = [(r["epoch"], r["share_boundary"]) for r in read_metrics(tmp_path / "bt" / "metrics.jsonl") if "share_boundary" in r]
    assert [e for e, _ in shares] == [0, 0, 1, 1]
    assert all(b == 1.0 for e, b in shares if e == 0)                    # warm-up epoch: everyone full
    assert all(b < 1.0 for e, b in shares if e == 1)                     # then the quantile groups
    assert repr(t.bullettrain).startswith("BulletTrain(rule='paper'") and t.config["bullettrain"] == repr(t.bullettrain)


def test_fast_at_with_cyclic_lr(cifar):
    t = ATTrainer(small(), cifar.subset(range(128)), objective="fast", schedule="cyclic", epochs=2, batch_size=32, lr=0.2,
                  progress=False, seed=0)
    lrs = []
    t.after_step = lambda: lrs.append(t.optimizer.param_groups[0]["lr"])
    t.fit()
    assert len(lrs) == 8 and max(lrs) == pytest.approx(0.2) and lrs.index(max(lrs)) == 3   # peak at mid-training
    assert lrs[-1] == pytest.approx(0.0) and lrs[0] == pytest.approx(0.05)
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_adversarial_training_makes_a_robust_model(data_root):
    from effdata.data import load_dataset
    from effdata.models import MLP
    from effdata.train import ClassifierTrainer
    train, test = load_dataset("digits"), load_dataset("digits", "test")
    kw = dict(epochs=8, batch_size=64, optimizer="adam", lr=2e-3, weight_decay=0.0, progress=False, augment=False, seed=0)
    torch.manual_seed(0); at = ATTrainer(MLP(), train, objective="pgd", eps=0.2, alpha=0.05, steps=5, **kw).fit()
    torch.manual_seed(0); std = ClassifierTrainer(MLP(), train, **kw).fit()
    r_at = evaluate_robustness(at.model, test, eps=0.2, pgd_steps=20)
    r_std = evaluate_robustness(std.model, test, eps=0.2, pgd_steps=20)
    assert r_at["clean_acc"] > 0.8 and r_std["clean_acc"] > 0.9, (r_at, r_std)
    assert r_at["pgd20_acc"] > r_std["pgd20_acc"] + 0.25, (r_at, r_std)


def test_pruned_schedule_timing_and_resume(cifar, tmp_path):
    kw = dict(objective="fast", subset="gradmatch", fraction=0.25, warm=1, every=1, epochs=3, batch_size=50, lr=0.05,
              progress=False, seed=3)
    a = ATTrainer(small(), cifar, run=tmp_path / "r", **kw)
    assert a.epoch_steps == [8, 2, 2] and a.k == 100
    a.fit(max_steps=9)
    b = ATTrainer(small(), cifar, run=tmp_path / "r", resume=True, **kw).fit()
    c = ATTrainer(small(), cifar, **kw).fit()
    for v1, v2 in zip(b.model.state_dict().values(), c.model.state_dict().values()):
        assert torch.equal(v1, v2)
    assert np.array_equal(b.current.indices, c.current.indices) and np.allclose(b.current.weights, c.current.weights)
    assert len(c.rounds) == 2 and c.seconds_select > 0 and c.train_seconds() >= c.seconds_select
    assert 0 < c.cpu_select <= c.train_cpu_seconds()
    assert abs(c.current.weights.mean() - 1) < 1e-5
    assert sorted(p.name for p in (tmp_path / "r" / "selections").iterdir()) == ["round_000.npz", "round_001.npz"]


def test_bad_input(cifar):
    with pytest.raises(ValueError, match="fraction"):
        ATTrainer(small(), cifar, subset="random", fraction=1.2)
    with pytest.raises(ValueError, match="fraction"):
        ATTrainer(small(), cifar, subset="random", fraction=0.0)
    with pytest.raises(ValueError, match="eps=-0.5"):
        ATTrainer(small(), cifar, eps=-0.5)
    with pytest.raises(ValueError, match="num_classes=10"):
        ATTrainer(SmallCNN(3, 4, width=8), cifar)
    with pytest.raises(ValueError, match="val_fraction=1.5"):
        ATTrainer(small(), cifar, subset="glister", fraction=0.3, val_fraction=1.5)
    with pytest.raises(ValueError, match="fewer than 2"):
        ATTrainer(small(), cifar.subset(range(2)), subset="glister", fraction=0.5, val_fraction=0.8)
    with pytest.raises(ValueError, match="unknown subset strategy 'craig'"):
        ATTrainer(small(), cifar, subset="craig", fraction=0.3)
    with pytest.raises(ValueError, match="unknown objective 'free'"):
        get_objective("free")
    with pytest.raises(ValueError, match="warm=5"):
        ATTrainer(small(), cifar, subset="random", fraction=0.3, warm=5, epochs=3)
    with pytest.raises(ValueError, match="unknown subset strategy"):
        get_strategy("nope")
