"""Foundation benchmark: import cost, data readers and loaders against torchvision/PyTorch, zoo accuracies.

    EFFDATA_DATA=../shared/data python bench/foundation.py [--threads 1]

Every ratio is measured side by side in this one run.
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, timeit, write  # noqa: E402


def import_seconds(stmt: str, repeat: int = 5) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", stmt], check=True)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from effdata.data import Loader, data_root, load_dataset, train_transform
    from effdata.metrics import accuracy
    from effdata.models import ZOO, pretrained
    root = data_root()
    rows, res = [], {"machine": machine(args.threads), "data_root": str(root)}

    # 1. import cost: the lazy package vs the data layer (which brings torch)
    t_pkg, t_data = import_seconds("import effdata"), import_seconds("import effdata.data")
    t_py = import_seconds("pass")
    res["import"] = {"effdata_s": t_pkg, "effdata_data_s": t_data, "python_startup_s": t_py}
    rows.append({"claim": "import effdata (s, incl. interpreter start)", "ours": t_pkg, "reference": t_data,
                 "reference is": "import effdata.data", "ratio ref/ours": t_data / t_pkg})

    # 2. reading MNIST test (10 000 images, idx) vs torchvision.datasets.MNIST on the same decompressed files
    import torchvision.datasets as tvd
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "mnist" / "MNIST" / "raw"; raw.mkdir(parents=True)
        for f in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
            (raw / f).write_bytes(gzip.decompress((root / "mnist" / "raw" / f"{f}.gz").read_bytes()))
        ours = timeit(lambda: load_dataset("mnist", "test", root=tmp), repeat=5)
        tv = timeit(lambda: tvd.MNIST(str(Path(tmp) / "mnist"), train=False, download=False), repeat=5)
        a, b = load_dataset("mnist", "test", root=tmp), tvd.MNIST(str(Path(tmp) / "mnist"), train=False)
        assert torch.equal(a.images[:, 0], b.data) and torch.equal(a.targets, b.targets)
    res["read_mnist_test"] = {"ours_s": ours, "torchvision_s": tv, "ratio": tv / ours, "identical": True}
    rows.append({"claim": "read MNIST test idx (s)", "ours": ours, "reference": tv,
                 "reference is": "torchvision MNIST", "ratio ref/ours": tv / ours})

    # 3. one epoch over the CIFAR-10 subset: Loader vs DataLoader(num_workers=0), same data, same transform
    from torch.utils.data import DataLoader
    for aug in (False, True):
        ds = load_dataset("cifar10", transform=train_transform("cifar10") if aug else None)
        n = len(ds)
        t_ours = timeit(lambda: [b for b in Loader(ds, 128, seed=0)], repeat=3)
        t_dl = timeit(lambda: [b for b in DataLoader(ds, 128, shuffle=True)], repeat=3)
        key = "loader_epoch_aug" if aug else "loader_epoch"
        res[key] = {"images": n, "ours_img_s": n / t_ours, "dataloader_img_s": n / t_dl, "ratio": t_dl / t_ours}
        rows.append({"claim": f"CIFAR-10 subset epoch, batch 128{' + crop/flip' if aug else ''} (img/s)",
                     "ours": n / t_ours, "reference": n / t_dl, "reference is": "torch DataLoader, 0 workers",
                     "ratio ref/ours": t_dl / t_ours})

    # 4. the pretrained zoo on the real test images
    res["zoo"] = {}
    for name, e in ZOO.items():
        acc = accuracy(pretrained(name), load_dataset(e.dataset, "test"))
        res["zoo"][name] = {"accuracy": acc, "documented": e.accuracy, "dataset": e.dataset}
        rows.append({"claim": f"zoo {name} test accuracy", "ours": acc, "reference": e.accuracy,
                     "reference is": "documented", "ratio ref/ours": e.accuracy / acc})
    p = write("foundation", res, "Foundation: import, readers, loaders, zoo", rows,
              "Ratios are reference time / our time (above 1: ours faster), from one run; for the zoo, documented / measured accuracy.")
    print(p.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
