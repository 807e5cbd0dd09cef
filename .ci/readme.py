"""Write README.md from nbs/index.ipynb (the offline stand-in for `nbdev_readme`, which needs Quarto).

    python .ci/readme.py           # rewrite README.md
    python .ci/readme.py --check   # exit 1 if README.md differs from what index.ipynb gives
"""
import json
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def render(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    parts = []
    for cell in nb["cells"]:
        src = "".join(cell["source"]).strip()
        if not src or src.startswith("#| hide"): continue
        if cell["cell_type"] == "markdown":
            parts.append(src)
        elif cell["cell_type"] == "code":
            parts.append(f"```python\n{src}\n```")
            text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream")
            if text.strip(): parts.append(f"```\n{text.rstrip()}\n```")
    return "<!-- generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file -->\n\n" + "\n\n".join(parts) + "\n"

if __name__ == "__main__":
    text, readme = render(root/"nbs"/"index.ipynb"), root/"README.md"
    if "--check" in sys.argv:
        if readme.read_text() != text:
            sys.exit("README.md differs from nbs/index.ipynb: run `python .ci/readme.py` and commit README.md")
        print("README.md matches nbs/index.ipynb")
    else:
        readme.write_text(text); print("wrote", readme)
