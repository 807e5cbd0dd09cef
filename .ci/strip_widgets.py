"""Remove saved ipywidgets state and widget-view outputs from notebooks (they render blank offline and weigh MBs).

    python .ci/strip_widgets.py nbs/*.ipynb nbs/tutorials/*.ipynb
"""
import json
import sys

MIME = "application/vnd.jupyter.widget-view+json"

for path in sys.argv[1:]:
    nb = json.load(open(path))
    changed = nb.get("metadata", {}).pop("widgets", None) is not None
    for cell in nb["cells"]:
        outs = cell.get("outputs", [])
        keep = []
        for o in outs:
            data = o.get("data", {})
            if MIME in data:
                changed = True
                data.pop(MIME)
                if not any(k for k in data if k != "text/plain"):
                    continue
            keep.append(o)
        if outs:
            cell["outputs"] = keep
    if changed:
        with open(path, "w") as f:
            json.dump(nb, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print("stripped", path)
