"""Run core: seeding, atomic files, checkpoints, run folders."""
import json

import pytest
import torch
from torch import nn

from effdata.core import (CheckpointError, Run, atomic_write, get_device, load_checkpoint, save_checkpoint,
                          seed_everything)


def test_seed_everything_same_draws():
    seed_everything(11); a = torch.randn(5)
    seed_everything(11); b = torch.randn(5)
    assert torch.equal(a, b)


def test_device_override(monkeypatch):
    monkeypatch.setenv("EFFDATA_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="device='tpu'"):
        get_device("tpu")


def test_atomic_write_keeps_old_on_error(tmp_path):
    p = tmp_path / "f.json"
    p.write_text('{"ok": 1}')
    with pytest.raises(RuntimeError):
        with atomic_write(p, "w") as f:
            f.write('{"half')
            raise RuntimeError("crash")
    assert json.loads(p.read_text()) == {"ok": 1} and [x.name for x in tmp_path.iterdir()] == ["f.json"]


def _net(width=8):
    return nn.Sequential(nn.Conv2d(1, width, 3), nn.BatchNorm2d(width), nn.Flatten(), nn.Linear(width * 36, 3))


def test_checkpoint_roundtrip_weights_only(tmp_path):
    net = _net(); opt = torch.optim.SGD(net.parameters(), 0.1, momentum=0.9)
    net(torch.randn(4, 1, 8, 8)).sum().backward(); opt.step()
    ck = save_checkpoint(tmp_path / "ck", {"model": net, "ema": _net()}, optimizer=opt, step=3, extra={"note": "x"})
    # the state file loads with weights_only=True (no pickled code)
    torch.load(ck / "state.pt", weights_only=True)
    net2, ema2 = _net(), _net(); opt2 = torch.optim.SGD(net2.parameters(), 0.1, momentum=0.9)
    info = load_checkpoint(ck, {"model": net2, "ema": ema2}, optimizer=opt2)
    assert info["step"] == 3 and info["extra"] == {"note": "x"}
    for a, b in zip(net.state_dict().values(), net2.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_other_architecture(tmp_path):
    ck = save_checkpoint(tmp_path / "ck", _net(8))
    with pytest.raises(CheckpointError, match=r"shape mismatch: .*0.weight: checkpoint \(8, 1, 3, 3\) vs model \(16, 1, 3, 3\)"):
        load_checkpoint(ck, _net(16))
    with pytest.raises(CheckpointError, match="missing in checkpoint"):
        load_checkpoint(ck, nn.Sequential(*_net(8), nn.Linear(3, 3)))
    with pytest.raises(FileNotFoundError, match="not an effdata checkpoint"):
        load_checkpoint(tmp_path, _net(8))


def test_run_folder(tmp_path):
    r = Run(tmp_path / "r", {"lr": 0.1})
    for s in range(1, 4):
        r.log(step=s, loss=float(s))
    r.save(2, _net())
    assert (tmp_path / "r" / "config.json").exists() and r.last_step() == 2
    with pytest.raises(FileExistsError, match="resume=True"):
        Run(tmp_path / "r", {"lr": 0.1})
    with pytest.raises(ValueError, match="lr: 0.1 -> 0.01"):
        Run(tmp_path / "r", {"lr": 0.01}, resume=True)
    r2 = Run(tmp_path / "r", resume=True)
    assert r2.config == {"lr": 0.1}
    r2.restore(_net())
    assert [m["step"] for m in r2.metrics()] == [1, 2]
