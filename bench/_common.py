"""Shared helpers for effdata benchmarks: machine record, timing, result files."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine(threads: int | None = None) -> dict:
    "What ran the benchmark: CPU, cores, threads, versions."
    import numpy, torch, torchvision
    import effdata
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip(); break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": threads or torch.get_num_threads(), "gpu": gpu,
            "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "effdata": effdata.__version__,
            "commit": _git("rev-parse", "--short", "HEAD"), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def _git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=RESULTS.parent).stdout.strip() or None
    except OSError:
        return None


class Rows:
    """An append-only jsonl of measured rows, one JSON object per line: a long benchmark appends each row as it finishes
    and skips, on restart, the rows already there. A half-written last line (the run was killed while writing it) is
    ignored on reading and cut before the next row is appended."""
    def __init__(self, path: str | os.PathLike):
        from effdata.core import read_metrics          # skips a half-written last line
        self.path = Path(path)
        self.rows: list[dict] = read_metrics(self.path)

    def have(self, **key) -> list[dict]:
        "The rows whose fields equal `key`."
        return [r for r in self.rows if all(r.get(k) == v for k, v in key.items())]

    def first(self, **key) -> dict | None:
        return next(iter(self.have(**key)), None)

    def add(self, rows: dict | list[dict]) -> dict | list[dict]:
        "Append one row or a list of rows (returned as given)."
        new = [rows] if isinstance(rows, dict) else list(rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":                                 # a half-written row from a kill: cut it
                    f.seek(0); f.truncate(f.read().rfind(b"\n") + 1)
            f.write("".join(json.dumps(r, default=float) + "\n" for r in new).encode())
        self.rows += new
        return rows


def sync():
    "Wait for queued CUDA work (so that a clock read after it is honest); nothing on the CPU."
    import torch
    if torch.cuda.is_available(): torch.cuda.synchronize()


def timeit(fn, repeat: int = 5, warmup: int = 1) -> float:
    "Median wall-clock seconds of `fn()` over `repeat` runs."
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    out += ["| " + " | ".join(_fmt(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(out)


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write(name: str, result: dict, title: str, rows: list[dict], notes: str = "") -> Path:
    "Write `results/<name>.json` and `results/<name>.md` (a short table plus the machine)."
    RESULTS.mkdir(exist_ok=True)
    from effdata.core import write_json
    write_json(RESULTS / f"{name}.json", result)
    m = result.get("machine", {})
    md = [f"# {title}", "", table(rows), ""]
    if notes:
        md += [notes, ""]
    md += [f"Machine: {m.get('cpu')}, {m.get('cores')} cores, torch threads {m.get('torch_threads')}, "
           f"GPU {m.get('gpu')}; torch {m.get('torch')}, effdata {m.get('effdata')} ({m.get('commit')}), {m.get('date')}."]
    (RESULTS / f"{name}.md").write_text("\n".join(md) + "\n")
    return RESULTS / f"{name}.json"
