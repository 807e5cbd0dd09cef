"""`effdata demo --quick` end to end: the printed tables, the run folder, an offline report."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path


def _exe():
    beside = Path(sys.executable).parent / "effdata"
    return str(beside) if beside.exists() else shutil.which("effdata")


def test_demo_quick(tmp_path):
    run = tmp_path / "demo"
    r = subprocess.run([_exe(), "demo", "--quick", "--run", str(run), "--quiet"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    for title in ("diffusion (DDPM)", "adversarial training", "multi-prize tickets", "RED"):
        assert title in out, out
    for row in ("full data", "random 30%", "coreset 30% + DRO", "full AT", "pruned AT", "CDD-RED", "| DO ", "| DS "):
        assert row in out, (row, out)
    # four stages, each with a result; the MPT rows are bit-exact against packed inference
    res = json.loads((run / "results.json").read_text())
    assert {"classifier", "diffusion", "at", "mpt", "red", "meta"} <= res.keys()
    assert len(res["diffusion"]["rows"]) == 3 and len(res["at"]["rows"]) == 2 and len(res["red"]["rows"]) == 3
    assert all(r["bit_exact"] for r in res["mpt"]["rows"]) and len(res["mpt"]["rows"]) == 2
    # the report opens offline: plotly.js beside it, no URL to a CDN (or anywhere)
    html = (run / "report.html").read_text()
    assert (run / "plotly.min.js").stat().st_size > 1_000_000
    assert "<script src='plotly.min.js'></script>" in html
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)          # (base64 may spell anything)
    assert not re.findall(r"https?://", text), re.findall(r"https?://\S{0,60}", text)[:5]
    assert "cdn" not in text.lower()
    assert html.count("data:image/png;base64,") >= 5 and html.count("Plotly.newPlot") >= 6
    assert (run / "effdata.toml").exists()
    # a finished demo folder is not overwritten without --resume; --resume reuses the finished stages
    again = subprocess.run([_exe(), "demo", "--quick", "--run", str(run), "--quiet"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "--resume" in again.stderr
