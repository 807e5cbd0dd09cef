"""The docs site builds offline from the notebooks, and the notebooks stay small (no browser needed here;
tests/test_browser.py loads the built site in Chromium)."""
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import build_docs  # noqa: E402


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path); mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod); return mod


def test_notebooks_small_with_kernelspec():
    check = _load(REPO / ".ci" / "check_notebooks.py", "check_notebooks")
    assert check.problems() == []


def test_notebook_check_catches_each_fault(tmp_path):
    check = _load(REPO / ".ci" / "check_notebooks.py", "check_notebooks")
    nb = {"cells": [{"cell_type": "code", "execution_count": 1, "id": "a", "metadata": {}, "source": "x",
                     "outputs": [{"output_type": "display_data", "metadata": {},
                                  "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "m"}}}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "a.ipynb").write_text(json.dumps(nb))
    (tmp_path / "big.ipynb").write_text(json.dumps({**nb, "cells": [], "metadata": {"kernelspec": {"name": "python3"}},
                                                    "pad": "x" * 1_100_000}))
    found = "\n".join(check.problems(tmp_path))
    for what in ("no kernelspec", "widget-view output", "big.ipynb: 1.1", ): assert what in found, what


def test_build_needs_are_installed():
    assert build_docs.missing_requirements() == []


def test_missing_requirement_is_named_and_nothing_installed(monkeypatch, capsys):
    monkeypatch.setitem(build_docs.NEEDS, "no_such_module_xyz", "no-such-dist")
    assert build_docs.main(["--check"]) == 2
    err = capsys.readouterr().err
    assert "no-such-dist" in err and "never installs" in err


def test_markdown_ids_math_and_links():
    md = build_docs.Markdown(lambda u: u)
    html = md("## ImageDataset.subset\n\nSee [source](https://x/y.py#L3){target=\"_blank\"} and $\\Sigma_1$.")
    assert 'id="imagedataset.subset"' in html and "<math" in html and "{target" not in html
    page = build_docs.Page.__new__(build_docs.Page); page.rel_root = "../"
    assert page.fix_link(build_docs.DOC_HOST + "data.html#selection") == "../data.html#selection"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    return out, build_docs.build(out, quiet=True)


def test_site_has_every_page_offline(built):
    out, rec = built
    pages = set(rec["pages"])
    assert {"index.html", "core.html", "data.html", "selection.html", "red.html", "benchmarks.html"} <= pages
    assert len(rec["tutorials"]) >= 1 and all(t.startswith("tutorials/") for t in rec["tutorials"])
    assert (out / "assets" / "plotly.min.js").stat().st_size > 1_000_000
    for href in pages:
        text = (out / href).read_text()
        # nothing is loaded from outside the site: no src= or stylesheet href= to another host
        assert not re.search(r'(src|href)="(https?:)?//[^"]+\.(js|css)', text), href
        assert "<h1" in text
    sel = (out / "selection.html").read_text()
    assert 'id="coresetexplorer"' in sel and "fraction" in sel                # show_doc rendered the signature
    assert "plotly-figure" in sel
    assert rec["largest_notebook_bytes"] < 1_000_000 and rec["nbs_bytes"] < 6_000_000


def test_nbdev_keeps_the_sectioned_sidebar(tmp_path, monkeypatch):
    "nbdev_docs runs nbdev_sidebar first: with custom_sidebar it must leave our sections alone (Quarto or not)."
    import shutil
    from nbdev.quarto import nbdev_sidebar
    shutil.copy(REPO / "settings.ini", tmp_path / "settings.ini")
    shutil.copytree(REPO / "nbs", tmp_path / "nbs")
    monkeypatch.chdir(tmp_path)
    before = (tmp_path / "nbs" / "sidebar.yml").read_text()
    nbdev_sidebar.__wrapped__(path="nbs")
    assert (tmp_path / "nbs" / "sidebar.yml").read_text() == before and "section: Tutorials" in before
