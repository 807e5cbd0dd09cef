"""Notebooks stay small and open cleanly: fail on a notebook over 1 MB, nbs/ over 6 MB, a notebook without a kernelspec,
saved widget state, a saved widget-view output, or plotly.js inlined in an output.

    python .ci/check_notebooks.py            # exit 1 with one line per problem
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_NB, MAX_NBS = 1_000_000, 6_000_000


def problems(nbs: Path = ROOT / "nbs") -> list[str]:
    out = []
    files = sorted(p for p in nbs.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    total = sum(p.stat().st_size for p in nbs.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    if total > MAX_NBS: out.append(f"nbs/ holds {total / 1e6:.1f} MB (limit {MAX_NBS / 1e6:.0f} MB)")
    for p in files:
        rel = p.relative_to(nbs.parent)
        size = p.stat().st_size
        if size > MAX_NB: out.append(f"{rel}: {size / 1e6:.2f} MB (limit 1 MB): store plotly figures as figure JSON "
                                     f"(effdata.viz.use_static_renderer()), not HTML")
        nb = json.loads(p.read_text(encoding="utf-8"))
        ks = nb.get("metadata", {}).get("kernelspec", {})
        if not ks.get("name"): out.append(f"{rel}: no kernelspec in the metadata (JupyterLab would ask for a kernel)")
        if "widgets" in nb.get("metadata", {}): out.append(f"{rel}: saved widget state (run .ci/strip_widgets.py)")
        for i, c in enumerate(nb["cells"]):
            for o in c.get("outputs", []):
                data = o.get("data", {})
                if "application/vnd.jupyter.widget-view+json" in data:
                    out.append(f"{rel}: cell {i} keeps a widget-view output (run .ci/strip_widgets.py)")
                html = "".join(data.get("text/html", ""))
                if len(html) > 500_000 and "plotly" in html.lower():
                    out.append(f"{rel}: cell {i} inlines plotly.js ({len(html) / 1e6:.1f} MB of HTML)")
    return out


if __name__ == "__main__":
    found = problems()
    for line in found: print("FAIL:", line)
    if found: sys.exit(1)
    print("notebooks: all small, each with a kernelspec, no saved widgets")
