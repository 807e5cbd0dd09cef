"""Real-browser tests (marked `browser`): the built docs site and the explorers in a live JupyterLab, driven by
Python Playwright in Debian's Chromium (/usr/bin/chromium; `apt-get install chromium`). Skipped where either is
missing, except under CI, where they must run.

Screenshots of each explorer go to tests/artifacts/ (or $EFFDATA_ARTIFACTS).
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

from conftest import REPO

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("EFFDATA_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("EFFDATA_ARTIFACTS", REPO / "tests" / "artifacts"))


def _need_browser():
    try: import playwright.sync_api  # noqa: F401
    except ImportError: msg = "Python Playwright is not installed (pip install -e '.[dev]')"
    else: msg = None if Path(CHROMIUM).exists() else f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if msg:
        if os.environ.get("CI"): pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _watch(page, host: str):
    "Record console errors, page errors, and every request that would leave `host` (those are blocked)."
    seen = {"errors": [], "outside": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))

    def route(r):
        u = urlparse(r.request.url)
        if u.scheme in ("data", "blob") or u.hostname == host: return r.continue_()
        seen["outside"].append(r.request.url); return r.abort()
    page.route("**/*", route)
    return seen


# ------------------------------------------------------------------ the docs site

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    sys.path.insert(0, str(REPO / "tools"))
    import build_docs
    out = tmp_path_factory.mktemp("site")
    rec = build_docs.build(out, quiet=True)
    handler = functools.partial(type("Quiet", (http.server.SimpleHTTPRequestHandler,),
                                     {"log_message": lambda *a: None}), directory=str(out))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield out, rec, f"http://127.0.0.1:{srv.server_port}/"
    srv.shutdown()


def _ids(html_text: str) -> set[str]: return set(re.findall(r'\sid="([^"]+)"', html_text))


def test_site_pages_in_chromium(site, browser):
    "Every page loads with no console error and no request leaving the machine; every plotly figure has drawn."
    out, rec, base = site
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    seen = _watch(page, "127.0.0.1")
    drawn = 0
    for href in rec["pages"]:
        page.goto(base + href, wait_until="load")
        n = page.locator(".plotly-figure").count()
        if n: page.wait_for_function(f"document.querySelectorAll('.plotly-figure .main-svg').length >= {n}", timeout=20000)
        assert page.locator(".plotly-figure .main-svg").count() >= n, f"{href}: a plotly figure did not draw"
        drawn += n
        assert not seen["errors"], f"{href}: console errors {seen['errors']}"
        assert not seen["outside"], f"{href}: requests leaving the machine {seen['outside']}"
    assert drawn >= 5, f"only {drawn} plotly figures on the whole site"
    page.close()


def test_site_internal_links_resolve(site, browser):
    "Every internal link (as the browser resolves it) names a page of the site and, where it has one, an existing anchor."
    out, rec, base = site
    page = browser.new_page()
    _watch(page, "127.0.0.1")
    bad, checked, ids = [], 0, {}
    for href in rec["pages"]:
        page.goto(base + href, wait_until="domcontentloaded")
        for link in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            if not link.startswith(base): continue
            target, frag = urldefrag(link)
            rel = target[len(base):] or "index.html"
            f = out / rel
            if not f.is_file(): bad.append(f"{href} -> {rel} (no such page)"); continue
            if frag:
                if rel not in ids: ids[rel] = _ids(f.read_text(encoding="utf-8"))
                if frag not in ids[rel]: bad.append(f"{href} -> {rel}#{frag} (no such anchor)")
            checked += 1
    assert checked > 100 and not bad, f"{len(bad)} broken of {checked}: {bad[:10]}"
    page.close()


def test_site_search_and_navigation(site, browser):
    "The sidebar lists the tutorials; the offline search finds an API page."
    out, rec, base = site
    page = browser.new_page()
    seen = _watch(page, "127.0.0.1")
    page.goto(base + "index.html")
    side = page.locator("nav.sidebar").inner_text()
    for t in ("Tutorials", "Methods", "Foundation", "Benchmark results"): assert t.lower() in side.lower(), t
    assert len(rec["tutorials"]) == page.locator("nav.sidebar a[href*='tutorials/']").count()
    page.fill("#search", "CoresetExplorer")
    page.wait_for_selector("#search-results a")
    assert "selection" in page.locator("#search-results a").first.inner_text().lower()
    assert not seen["errors"] and not seen["outside"]
    page.close()


# ------------------------------------------------------------------ explorers in JupyterLab

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "A JupyterLab server on 127.0.0.1 over a folder of one small notebook per explorer."
    _need_browser()
    from explorers import BUILDERS
    root = tmp_path_factory.mktemp("lab")
    tests = str(REPO / "tests")
    for name in BUILDERS:
        cells = [f"import sys; sys.path.insert(0, {tests!r})", "import explorers",
                 f"ex = explorers.{name}()", "ex.widget"]
        nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                         "source": s} for i, s in enumerate(cells)],
              "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
              "nbformat": 4, "nbformat_minor": 5}
        (root / f"{name}.ipynb").write_text(json.dumps(nb))
    (root / ".jupyter" / "labconfig").mkdir(parents=True)                  # no "get Jupyter news?" popup over the explorers
    (root / ".jupyter" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root / ".jupyter"), JUPYTER_RUNTIME_DIR=str(root / ".runtime"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
           "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0: cmd.append("--allow-root")
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(120):
        try: urllib.request.urlopen(url + "api/status", timeout=2); break
        except Exception: time.sleep(0.5)
    else:
        proc.kill(); pytest.fail(f"JupyterLab did not start: {(root / 'lab.log').read_text()[-2000:]}")
    yield url
    proc.terminate()
    try: proc.wait(10)
    except subprocess.TimeoutExpired: proc.kill()


STATE_JS = """() => JSON.stringify({
  plots: Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .js-plotly-plot')).map(
    g => JSON.stringify([g.data, g.layout.shapes, g.layout.annotations, g.layout.title])),
  images: Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .widget-image')).map(i => i.src.length + i.src.slice(-64)),
  html: Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .widget-html-content')).map(h => h.innerText)})"""

PLOTS = {"coreset": 3, "class_weights": 4, "pruning": 3, "mask": 2, "red": 1}


def _move(page, label: str):
    "Change the ipywidgets control whose description is `label`, as a user would."
    box = page.locator(f".jp-NotebookPanel:not(.lm-mod-hidden) .widget-inline-hbox:has(> label:text-is('{label}'))").first
    sel = box.locator("select")
    if sel.count():
        n = sel.locator("option").count()
        cur = sel.evaluate("s => s.selectedIndex")
        sel.select_option(index=(cur + 1) % n)
        return
    handle = box.locator(".noUi-handle").first
    handle.focus()
    for key in ("ArrowRight", "ArrowLeft", "ArrowLeft"):
        before = box.locator(".widget-readout").inner_text()
        page.keyboard.press(key)
        page.wait_for_timeout(200)
        if box.locator(".widget-readout").inner_text() != before: return
    raise AssertionError(f"the slider {label!r} did not move")


def test_explorers_in_jupyterlab(lab, browser):
    "Open each explorer's notebook, run it, move every control and see the figure change; screenshot each explorer."
    from explorers import BUILDERS, CONTROLS
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    seen = _watch(page, "127.0.0.1")
    labels = {"score_w": "score", "fraction": "kept", "klass": "class", "step": "step", "round": "round", "kept": "kept",
              "attack": "attack", "method": "attribution", "denoiser": "denoiser", "image": "image"}
    only = [n for n in os.environ.get("EFFDATA_EXPLORERS", "").split(",") if n]      # to look at a few while developing
    for name in only or BUILDERS:
        page.goto(lab + f"lab/tree/{name}.ipynb?reset")                  # ?reset: no workspace restored from before
        page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook", timeout=60000)
        assert page.locator(".jp-Dialog").count() == 0, "a dialog (kernel selection?) opened with the notebook"
        # the kernel is ready when the status bar names it and says Idle (before that it reads "No Kernel | Initializing")
        page.wait_for_function("""() => /Python 3.*\\| Idle/.test((document.querySelector('#jp-main-statusbar') || {innerText: ''}).innerText)""",
                               timeout=90000)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator("li[data-command='runmenu:run-all']").click()
        try:
            page.wait_for_function(f"""() => document.querySelectorAll(
                '.jp-NotebookPanel:not(.lm-mod-hidden) .js-plotly-plot .main-svg').length >= {PLOTS[name]}""", timeout=240000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"explorer_{name}_failed.png")); raise
        page.wait_for_timeout(500)
        for control in CONTROLS[name]:
            before = page.evaluate(STATE_JS)
            _move(page, labels[control])
            try: page.wait_for_function(f"() => ({STATE_JS})() !== {json.dumps(before)}", timeout=120000)
            except Exception as e:
                page.screenshot(path=str(ARTIFACTS / f"explorer_{name}_{control}_failed.png"))
                raise AssertionError(f"{name}: moving {control!r} did not change the figure") from e
        out = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output").last
        out.scroll_into_view_if_needed()
        out.screenshot(path=str(ARTIFACTS / f"explorer_{name}.png"))
        assert not seen["errors"], f"{name}: console errors in JupyterLab: {seen['errors'][:5]}"
        assert not seen["outside"], f"{name}: JupyterLab requested outside the machine: {seen['outside']}"
        page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
        page.locator("li[data-command='filemenu:close-and-cleanup']").click()
        if page.locator(".jp-Dialog").count(): page.locator(".jp-Dialog button.jp-mod-warn, .jp-Dialog .jp-mod-accept").last.click()
    page.close()
