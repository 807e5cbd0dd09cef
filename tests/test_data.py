"""The data layer against the real data subsets: counts, shapes, formats, bad input."""
import gzip
import pickle
import shutil

import numpy as np
import pytest
import torch

from effdata.core import check_fraction
from effdata.data import (ClassBalancedSampler, DatasetError, DatasetNotFoundError, ImageDataset, Loader, Selection,
                          WeightedSampler, load_dataset, read_idx, train_transform)

COUNTS = {  # documented in shared/data/README.md
    ("cifar10", "train"): 8152, ("cifar10", "test"): 1017,
    ("mnist", "train"): 17435, ("mnist", "test"): 10000,
    ("fashion_mnist", "train"): 1813, ("fashion_mnist", "test"): 4443,
    ("cifar100", "train"): 281,
}
SHAPES = {"cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28)}


@pytest.mark.parametrize("name,split", list(COUNTS))
def test_counts_and_shapes(data_root, name, split):
    ds = load_dataset(name, split, root=data_root)
    assert len(ds) == COUNTS[name, split]
    assert ds.shape == SHAPES[name] and ds.images.dtype == torch.uint8
    assert int(ds.targets.max()) < ds.num_classes
    x, y = ds[0]
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and isinstance(y, int)


def test_env_root(data_root, monkeypatch):
    monkeypatch.setenv("EFFDATA_DATA", str(data_root))
    assert len(load_dataset("cifar10", "test")) == 1017


def test_digits_needs_no_files(tmp_path, monkeypatch):
    monkeypatch.setenv("EFFDATA_DATA", str(tmp_path / "nothing-here"))
    tr, te = load_dataset("digits"), load_dataset("digits", "test")
    assert (len(tr), len(te), tr.shape) == (1437, 360, (1, 8, 8))
    assert tr.images.max() == 255 and tr.class_counts().min() > 100


def test_pickles_match_npz(data_root):
    """The pickle reader and the npz copy of the same official pixels agree exactly (CHW vs HWC)."""
    z = np.load(data_root / "cifar10" / "cifar10_subset.npz")
    for split in ("train", "test"):
        ds = load_dataset("cifar10", split, root=data_root)
        assert np.array_equal(ds.images.numpy(), z[f"x_{split}"].transpose(0, 3, 1, 2))
        assert np.array_equal(ds.targets.numpy(), z[f"y_{split}"])
    assert load_dataset("cifar10", root=data_root).classes == list(z["label_names"])


def test_cifar10_test_class_counts(data_root):
    assert load_dataset("cifar10", "test", root=data_root).class_counts().tolist() == [105, 93, 100, 104, 92, 87, 114, 102, 110, 110]


def test_fashion_names(data_root):
    assert load_dataset("fashion_mnist", root=data_root).classes[9] == "Ankle boot"


def test_missing_dataset_message(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("cifar10", root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "cifar10") in msg and "download=True" in msg and "EFFDATA_DATA" in msg


def test_cifar100_test_missing(data_root):
    with pytest.raises(DatasetNotFoundError, match="cifar100"):
        load_dataset("cifar100", "test", root=data_root)


@pytest.mark.parametrize("call,match", [
    (lambda: load_dataset("imagenet"), "choose one of digits"),
    (lambda: load_dataset("digits", split="valid"), "use 'train' or 'test'"),
])
def test_bad_names(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _copy_cifar(data_root, tmp_path):
    dst = tmp_path / "cifar10" / "cifar-10-batches-py"
    shutil.copytree(data_root / "cifar10" / "cifar-10-batches-py", dst)
    return dst


def test_corrupt_pickle(data_root, tmp_path):
    d = _copy_cifar(data_root, tmp_path)
    (d / "data_batch_2").write_bytes((d / "data_batch_2").read_bytes()[:5000])
    with pytest.raises(DatasetError, match="data_batch_2.*download=True"):
        load_dataset("cifar10", root=tmp_path)
    assert len(load_dataset("cifar10", "test", root=tmp_path)) == 1017  # the other split is unaffected


def test_partial_copy_of_batches(data_root, tmp_path):
    """Fewer batch files than the release: the ones present load."""
    d = _copy_cifar(data_root, tmp_path)
    for i in (2, 3, 4, 5):
        (d / f"data_batch_{i}").unlink()
    assert len(load_dataset("cifar10", root=tmp_path)) == 4000


def test_truncated_idx_gz(data_root, tmp_path):
    """A download cut off mid-file still gives its whole records, with a warning."""
    raw = tmp_path / "mnist" / "raw"
    raw.mkdir(parents=True)
    src = data_root / "mnist" / "raw"
    full = gzip.decompress((src / "t10k-images-idx3-ubyte.gz").read_bytes())
    cut = gzip.compress(full)[:200_000]                         # a truncated gzip stream
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(cut)
    shutil.copy(src / "t10k-labels-idx1-ubyte.gz", raw)
    with pytest.warns(UserWarning, match="partial copy"):
        ds = load_dataset("mnist", "test", root=tmp_path)
    assert 0 < len(ds) < 10000
    ref = load_dataset("mnist", "test", root=data_root)
    assert torch.equal(ds.images, ref.images[:len(ds)]) and torch.equal(ds.targets, ref.targets[:len(ds)])


def test_bad_idx_magic(tmp_path):
    p = tmp_path / "x-idx3-ubyte"
    p.write_bytes(b"\x01\x02\x03\x04" + b"\0" * 100)
    with pytest.raises(DatasetError, match="bad magic"):
        read_idx(p)


def test_uncompressed_idx_and_torchvision_layout(data_root, tmp_path):
    raw = tmp_path / "mnist" / "MNIST" / "raw"   # where torchvision's download puts the files
    raw.mkdir(parents=True)
    for f in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / f).write_bytes(gzip.decompress((data_root / "mnist" / "raw" / f"{f}.gz").read_bytes()))
    assert len(load_dataset("mnist", "test", root=tmp_path)) == 10000


@pytest.mark.parametrize("bad", [0, 0.0, -0.2, 1.01, 30, float("nan"), float("inf")])
def test_fraction_bounds(bad):
    with pytest.raises(ValueError, match=r"fraction=.*\(0, 1\]"):
        check_fraction(bad)


def test_selection_bad_indices():
    with pytest.raises(IndexError, match="valid 0..99"):
        Selection([5, 100], 100)
    with pytest.raises(ValueError, match="repeated"):
        Selection([5, 5], 100)
    with pytest.raises(ValueError, match="one weight per sample"):
        Selection([1, 2], 100, weights=[1.0])
    with pytest.raises(ValueError, match="NaN"):
        Selection([1, 2], 100, weights=[1.0, float("nan")])


def test_selection_roundtrip_and_apply(tmp_path):
    ds = load_dataset("digits")
    sel = Selection(np.arange(0, len(ds), 7), len(ds), weights=np.linspace(0.5, 2, 206), info={"method": "t", "seed": 1})
    back = Selection.load(sel.save(tmp_path / "s.npz"))
    assert np.array_equal(back.indices, sel.indices) and np.allclose(back.weights, sel.weights) and back.info == sel.info
    sub = back.apply(ds)
    assert torch.equal(sub.images, ds.images[::7]) and torch.equal(sub.source_indices, torch.arange(0, len(ds), 7))
    with pytest.raises(ValueError, match="made for"):
        back.apply(load_dataset("digits", "test"))


def test_loader_deterministic_and_resumable(data_root):
    ds = load_dataset("cifar10", root=data_root, transform=train_transform("cifar10"))
    a = list(Loader(ds, 256, seed=3).epoch(1))
    b = list(Loader(ds, 256, seed=3).epoch(1, start=5))
    assert all(torch.equal(x.x, y.x) and torch.equal(x.idx, y.idx) for x, y in zip(a[5:], b))
    c = next(Loader(ds, 256, seed=4).epoch(1))
    assert not torch.equal(a[0].idx, c.idx)
    assert sum(len(x.idx) for x in a) == len(ds)


def test_samplers():
    y = torch.tensor([0] * 95 + [1] * 5)
    draw = y[ClassBalancedSampler(y, 10_000, seed=0).indices()]
    assert abs(draw.float().mean().item() - 0.5) < 0.02
    assert torch.equal(ClassBalancedSampler(y, 50, seed=1).indices(2), ClassBalancedSampler(y, 50, seed=1).indices(2))
    with pytest.raises(ValueError, match="negative"):
        WeightedSampler([1.0, -1.0])


def test_image_dataset_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(torch.zeros(2, 1, 4, 4), [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="differ in length"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0], ["a", "b"])
    with pytest.raises(ValueError, match="3 classes|but there are 2 classes"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0, 2], ["a", "b"])
