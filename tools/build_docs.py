"""Build effdata's docs site offline, in one command, with no Quarto and no network.

    python tools/build_docs.py                 # -> _site/ (open _site/index.html, or serve the folder)
    python tools/build_docs.py --out DIR       # somewhere else
    python tools/build_docs.py --check         # only say whether everything the build needs is installed

Two stages:
1. nbdev's own notebook processing (`nbdev.serve.proc_nbs`, the step `nbdev_docs` runs before Quarto): it executes
   the import, export and `show_doc` cells, so API pages carry rendered signatures and docstrings, and writes the
   processed notebooks to `_proc/`. Nothing here calls Quarto, `nbdev_docs` or pip.
2. A small static-site renderer: markdown by mistune (math to MathML by latex2mathml, so no MathJax), code by
   Pygments, pages by a Jinja template, navigation from `nbs/sidebar.yml`. Plotly figures are stored in the
   notebooks as figure JSON; the site serves plotly.js itself (copied from the installed plotly package) and draws
   them. Widget views need a live kernel: the notebooks show a static figure beside each live explorer, and any
   widget-view output left in a notebook is dropped here. No page loads anything from outside the site
   (no require.js is needed: nothing on the site uses AMD modules).

Why not mkdocs-material + mkdocs-jupyter: both need the same custom handling of plotly's mimetype and of nbdev's
Quarto markdown (frontmatter, `#| echo: false`, Pandoc link attributes), and bring fonts and require.js from CDNs
that would have to be switched off; the libraries used here already come with nbdev and jupyterlab.

The build writes `bench/results/docs.json` (command, pages, tutorials, notebook sizes, seconds).
"""
from __future__ import annotations

import argparse
import html
import importlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEEDS = {  # module -> the distribution that provides it (all in effdata's [dev] extra)
    "nbdev": "nbdev==2.4.14", "execnb": "execnb<0.2", "mistune": "mistune>=3", "pygments": "pygments",
    "jinja2": "jinja2", "yaml": "pyyaml", "plotly": "plotly", "latex2mathml": "latex2mathml",
}
DOC_HOST = "https://effdata.github.io/effdata/"


def missing_requirements() -> list[str]:
    "The distributions the build needs that cannot be imported here."
    out = []
    for mod, dist in NEEDS.items():
        try: importlib.import_module(mod)
        except ImportError: out.append(dist)
    try:
        import mistune
        if int(mistune.__version__.split(".")[0]) < 3: out.append("mistune>=3")
    except ImportError: pass
    return out


# ---------------------------------------------------------------- markdown, math and code

def _slug(text: str) -> str:
    "Pandoc's (so Quarto's and nbdev's doc links') heading identifier."
    s = re.sub(r"<[^>]+>", "", html.unescape(text)).lower()
    s = re.sub(r"[^\w\s.\-]", "", s).strip()
    s = re.sub(r"\s+", "-", s)
    s = re.sub(r"^[^a-z]+", "", s)
    return s or "section"


def _mathml(tex: str, display: bool) -> str:
    from latex2mathml.converter import convert
    try: return convert(tex, display="block" if display else "inline")
    except Exception:  # keep the TeX readable rather than failing the build on one formula
        return f'<code class="tex">{html.escape(tex)}</code>'


class Markdown:
    "mistune 3 with tables, math (to MathML), strikethrough; headings get Pandoc ids and are collected for the TOC."

    def __init__(self, link_fix):
        import mistune
        from mistune.plugins.math import math as math_plugin
        md_self = self

        class Renderer(mistune.HTMLRenderer):
            def heading(self, text, level, **attrs):
                hid = md_self.unique(_slug(text))
                if level in (2, 3): md_self.toc.append((level, hid, re.sub(r"<[^>]+>", "", text)))
                return f'<h{level} id="{hid}"><a class="anchor" href="#{hid}">{text}</a></h{level}>\n'

            def link(self, text, url, title=None):
                return super().link(text, link_fix(url), title)

            def block_math(self, text): return _mathml(text, True)
            def inline_math(self, text): return _mathml(text, False)
            def block_code(self, code, info=None): return highlight(code, (info or "python").split()[0])

        self.toc, self.ids = [], set()
        self._md = mistune.create_markdown(renderer=Renderer(escape=False),
                                           plugins=["table", "strikethrough", math_plugin, "url"])

    def unique(self, hid):
        base, i = hid, 1
        while hid in self.ids: hid, i = f"{base}-{i}", i + 1
        self.ids.add(hid); return hid

    def __call__(self, text: str) -> str:
        text = re.sub(r"^\[source\]\(([^)]*)\)\{[^}]*\}", r'<a class="source-link" href="\1">source</a>', text, flags=re.M)
        text = re.sub(r"(\]\([^)]*\))\{[^}]*\}", r"\1", text)            # Pandoc link attributes {target=...}
        text = re.sub(r"^:::.*$", "", text, flags=re.M)                   # Quarto divs (callouts): keep the content
        return self._md(text)


def highlight(code: str, lang: str = "python") -> str:
    from pygments import highlight as hl
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound
    try: lexer = get_lexer_by_name(lang)
    except ClassNotFound: lexer = get_lexer_by_name("text")
    return hl(code, lexer, HtmlFormatter(cssclass="highlight"))


# ---------------------------------------------------------------- notebooks to pages

_DIRECTIVE = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*)$")


def _directives(src: str) -> tuple[dict, str]:
    "Quarto/nbdev `#| key: value` lines of a code cell, and the source without them."
    d, keep = {}, []
    for line in src.splitlines():
        m = _DIRECTIVE.match(line)
        if m: d[m.group(1)] = m.group(2).strip()
        else: keep.append(line)
    return d, "\n".join(keep).strip("\n")


def _text(v) -> str: return "".join(v) if isinstance(v, list) else str(v)


class Page:
    "One processed notebook rendered to the body of a page."

    def __init__(self, nb_path: Path, rel_root: str):
        self.path, self.rel_root = nb_path, rel_root
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        self.cells, self.front = nb["cells"], {}
        if self.cells and self.cells[0]["cell_type"] == "raw":
            import yaml
            raw = _text(self.cells[0]["source"]).strip().strip("-")
            self.front = yaml.safe_load(raw) or {}
            self.cells = self.cells[1:]
        self.title = str(self.front.get("title", nb_path.stem))
        self.description = str(self.front.get("description", "") or "")
        self.output_file = self.front.get("output-file") or nb_path.with_suffix(".html").name
        self.md = Markdown(self.fix_link)
        self.n_figures = 0

    def fix_link(self, url: str) -> str:
        "nbdev's doc links point at the published host: make them relative, so the site works wherever it is put."
        if url.startswith(DOC_HOST): return self.rel_root + url[len(DOC_HOST):]
        if url.endswith(".ipynb") or ".ipynb#" in url:                     # links between notebooks
            return re.sub(r"(^|/)\d+_([\w-]+)\.ipynb", r"\1\2.html", url).replace(".ipynb", ".html")
        return url

    def output(self, o: dict, asis: bool) -> str:
        kind = o.get("output_type")
        if kind == "stream":
            return f'<pre class="output stream {o.get("name", "")}">{html.escape(_text(o.get("text", "")))}</pre>'
        if kind == "error":
            tb = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(o.get("traceback", [])))
            return f'<pre class="output error">{html.escape(tb or o.get("ename", ""))}</pre>'
        data = o.get("data", {})
        if "application/vnd.plotly.v1+json" in data: return self.plotly(data["application/vnd.plotly.v1+json"])
        if "application/vnd.jupyter.widget-view+json" in data and len(data) <= 2: return ""   # a live widget
        if "text/markdown" in data and (asis or "text/html" not in data):
            return f'<div class="output markdown">{self.md(_text(data["text/markdown"]))}</div>'
        if "text/html" in data: return f'<div class="output html">{_text(data["text/html"])}</div>'
        if "image/svg+xml" in data: return f'<div class="output image">{_text(data["image/svg+xml"])}</div>'
        for mime in ("image/png", "image/jpeg", "image/gif"):
            if mime in data:
                b64 = _text(data[mime]).replace("\n", "")
                return f'<div class="output image"><img alt="figure" src="data:{mime};base64,{b64}"></div>'
        if "text/latex" in data: return f'<div class="output math">{_mathml(_text(data["text/latex"]).strip("$"), True)}</div>'
        if "text/plain" in data: return f'<pre class="output">{html.escape(_text(data["text/plain"]))}</pre>'
        return ""

    def plotly(self, fig: dict) -> str:
        self.n_figures += 1
        fid = f"plotly-{self.n_figures}"
        payload = json.dumps({"data": fig.get("data", []), "layout": fig.get("layout", {})}, separators=(",", ":"))
        payload = payload.replace("</", "<\\/")
        return (f'<div class="output plotly"><div class="plotly-figure" id="{fid}"></div>'
                f'<script type="application/json" data-plotly-for="{fid}">{payload}</script></div>')

    def body(self) -> str:
        parts = []
        if self.description: parts.append(f'<p class="lead">{html.escape(self.description)}</p>')
        for c in self.cells:
            src = _text(c.get("source", ""))
            if c["cell_type"] == "markdown":
                if "AUTOGENERATED! DO NOT EDIT" in src: continue
                parts.append(f'<div class="cell markdown">{self.md(src)}</div>')
            elif c["cell_type"] == "code":
                d, code = _directives(src)
                echo = d.get("echo", "true").lower() != "false" and d.get("include", "true").lower() != "false"
                outs = "" if d.get("output", "").lower() == "false" else \
                    "".join(self.output(o, d.get("output") == "asis") for o in c.get("outputs", []))
                inner = (f'<div class="input">{highlight(code)}</div>' if echo and code else "") + outs
                if inner: parts.append(f'<div class="cell code">{inner}</div>')
            elif c["cell_type"] == "raw" and src.strip():
                parts.append(f'<pre class="raw">{html.escape(src)}</pre>')
        return "\n".join(parts)


# ---------------------------------------------------------------- the site

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} | effdata</title>
<link rel="stylesheet" href="{{ root }}assets/site.css">
<link rel="stylesheet" href="{{ root }}assets/pygments.css">
<link rel="icon" href="data:,">
</head>
<body data-root="{{ root }}">
<header class="topbar">
  <a class="brand" href="{{ root }}index.html">effdata</a>
  <nav class="toplinks">
    <a href="{{ root }}index.html">Home</a>
    <a href="{{ root }}{{ first_tutorial }}">Tutorials</a>
    <a href="{{ root }}core.html">API</a>
    <a href="{{ root }}benchmarks.html">Benchmarks</a>
  </nav>
  <input id="search" type="search" placeholder="Search" aria-label="Search the docs" autocomplete="off">
  <div id="search-results" hidden></div>
</header>
<div class="layout">
<nav class="sidebar" aria-label="Site">
{% for section in nav %}
  {% if section.title %}<div class="section-title">{{ section.title }}</div>{% endif %}
  <ul>
  {% for item in section.pages %}
    <li><a href="{{ root }}{{ item.href }}"{% if item.href == current %} class="current" aria-current="page"{% endif %}>{{ item.title }}</a></li>
  {% endfor %}
  </ul>
{% endfor %}
</nav>
<main class="content">
<h1 class="title">{{ title }}</h1>
{{ body }}
</main>
<nav class="toc" aria-label="On this page">
{% if toc %}<div class="section-title">On this page</div>
<ul>{% for level, hid, text in toc %}<li class="l{{ level }}"><a href="#{{ hid }}">{{ text }}</a></li>{% endfor %}</ul>{% endif %}
</nav>
</div>
{% if figures %}<script src="{{ root }}assets/plotly.min.js"></script>{% endif %}
<script src="{{ root }}assets/site.js"></script>
</body>
</html>
"""

CSS = """
:root { --fg:#1d2330; --muted:#5b6472; --line:#e3e6ea; --accent:#2c6fbb; --code:#f6f8fa; }
* { box-sizing: border-box; }
body { margin:0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
.topbar { position: sticky; top:0; z-index:10; display:flex; gap:1.5rem; align-items:center; padding:.6rem 1.2rem;
          background:#20325a; color:#fff; }
.topbar a { color:#fff; } .brand { font-weight:700; font-size:1.15rem; }
.toplinks { display:flex; gap:1rem; flex:1; }
#search { width: 14rem; padding:.3rem .5rem; border-radius:4px; border:0; }
#search-results { position:absolute; right:1.2rem; top:3rem; width:28rem; max-height:60vh; overflow:auto; background:#fff;
                  color:var(--fg); border:1px solid var(--line); box-shadow:0 4px 16px #0002; padding:.4rem; }
#search-results a { display:block; padding:.3rem .4rem; color:var(--fg); } #search-results a:hover { background:var(--code); }
#search-results small { color: var(--muted); }
.layout { display:grid; grid-template-columns: 15rem minmax(0, 1fr) 13rem; gap: 2rem; max-width: 90rem; margin: 0 auto;
          padding: 0 1.2rem; }
.sidebar, .toc { position: sticky; top: 3.5rem; align-self: start; max-height: calc(100vh - 4rem); overflow:auto;
                 font-size:.9rem; padding-top:1.5rem; }
.sidebar ul, .toc ul { list-style:none; margin:0 0 1rem; padding:0; }
.sidebar li a { display:block; padding:.15rem .5rem; border-radius:4px; color: var(--fg); }
.sidebar li a.current { background:#e8f0fb; color: var(--accent); font-weight:600; }
.section-title { font-weight:700; color: var(--muted); text-transform: uppercase; font-size:.75rem; margin:.6rem 0 .3rem; }
.toc li.l3 { padding-left: .8rem; } .toc a { color: var(--muted); }
.content { min-width:0; padding: 1.5rem 0 4rem; }
h1.title { margin-top:0; } .lead { font-size:1.1rem; color:var(--muted); }
h2, h3, h4 { margin-top: 2rem; } h2 a.anchor, h3 a.anchor, h4 a.anchor { color: inherit; }
.cell { margin: .8rem 0; }
.highlight { background: var(--code); border-radius: 6px; padding: .2rem .8rem; overflow-x:auto; }
.highlight pre { margin:.4rem 0; font-size:.85rem; }
pre.output { margin:.2rem 0 0; padding:.4rem .8rem; font-size:.82rem; overflow-x:auto; border-left:3px solid var(--line); }
pre.output.stderr, pre.output.error { border-left-color:#d9534f; background:#fdf3f3; }
.output.markdown { margin-top:1.2rem; } .output.markdown hr { border:0; border-top:1px solid var(--line); }
a.source-link { float:right; font-size:.8rem; margin-top:.6rem; }
.output.markdown h3 { margin-top:.6rem; font-family: ui-monospace, monospace; }
.output img { max-width:100%; height:auto; image-rendering: pixelated; }
.plotly-figure { width:100%; min-height: 200px; }
table { border-collapse: collapse; margin: .8rem 0; font-size:.9rem; display:block; overflow-x:auto; }
th, td { border:1px solid var(--line); padding:.25rem .6rem; text-align:left; } th { background: var(--code); }
code { font-size:.88em; background: var(--code); padding: .05rem .25rem; border-radius: 3px; }
pre code { background: none; padding:0; }
blockquote { margin-left:0; padding-left:1rem; border-left:4px solid var(--line); color:var(--muted); }
@media (max-width: 70rem) { .layout { grid-template-columns: 13rem minmax(0, 1fr); } .toc { display:none; } }
@media (max-width: 48rem) { .layout { display:block; } .sidebar { position:static; max-height:none; } }
"""

JS = r"""
// effdata docs: draw the plotly figures stored as JSON (sized to their container), and a small offline search.
(function () {
  function drawFigures() {
    if (!window.Plotly) return;
    document.querySelectorAll('script[data-plotly-for]').forEach(function (s) {
      var fig = JSON.parse(s.textContent), el = document.getElementById(s.getAttribute('data-plotly-for'));
      var layout = fig.layout || {};
      delete layout.width; layout.autosize = true;                // size to the page's column, not a fixed width
      Plotly.newPlot(el, fig.data || [], layout, {responsive: true, displaylogo: false});
    });
  }
  var root = document.body.getAttribute('data-root') || '';
  var index = null, box = document.getElementById('search'), out = document.getElementById('search-results');
  function search(q) {
    q = q.trim().toLowerCase();
    if (!q) { out.hidden = true; return; }
    var terms = q.split(/\s+/), hits = [];
    index.forEach(function (p) {
      var hay = (p.title + ' ' + p.text).toLowerCase(), score = 0;
      for (var i = 0; i < terms.length; i++) { var n = hay.split(terms[i]).length - 1; if (!n) return; score += n; }
      if (p.title.toLowerCase().indexOf(q) >= 0) score += 100;
      hits.push([score, p]);
    });
    hits.sort(function (a, b) { return b[0] - a[0]; });
    out.innerHTML = hits.slice(0, 12).map(function (h) {
      return '<a href="' + root + h[1].href + '">' + h[1].title + ' <small>' + h[1].section + '</small></a>';
    }).join('') || '<small>no match</small>';
    out.hidden = false;
  }
  if (box) box.addEventListener('input', function () {
    if (index) return search(box.value);
    fetch(root + 'search.json').then(function (r) { return r.json(); }).then(function (j) { index = j; search(box.value); });
  });
  document.addEventListener('click', function (e) { if (out && !out.contains(e.target) && e.target !== box) out.hidden = true; });
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', drawFigures); else drawFigures();
})();
"""


def _nav(sidebar: Path, pages: dict[str, Page]) -> list[dict]:
    "Sections from nbs/sidebar.yml (nbdev's format; `auto:` globs expand in sorted order)."
    import yaml
    spec = yaml.safe_load(sidebar.read_text())["website"]["sidebar"]["contents"]
    nav, loose = [], {"title": "", "pages": []}

    def entries(items):
        out = []
        for it in items:
            if isinstance(it, str): names = [it]
            elif isinstance(it, dict) and "auto" in it:
                pat = it["auto"].lstrip("/")
                names = sorted(k for k in pages if Path(k).match(pat))
            else: continue
            for n in names:
                if n in pages: out.append({"title": pages[n].title, "href": pages[n].href, "nb": n})
        return out

    for it in spec:
        if isinstance(it, dict) and "section" in it:
            nav.append({"title": it["section"], "pages": entries(it.get("contents", []))})
        else: loose["pages"] += entries([it])
    if loose["pages"]: nav.insert(0, loose)
    listed = {p["nb"] for s in nav for p in s["pages"]}
    extra = [k for k in pages if k not in listed]
    if extra: nav.append({"title": "More", "pages": entries(extra)})
    return nav


def _benchmarks_body(md: Markdown, results: Path) -> str:
    files = sorted(results.glob("*.md"))
    out = ['<p class="lead">What was measured, as recorded by the scripts in <code>bench/</code>: one Markdown table per '
           'claim, with its JSON beside it (machine, threads, versions and commit inside). CPU figures come from a shared '
           '2-core machine unless a table says GPU.</p>']
    for f in files:
        text = f.read_text(encoding="utf-8")
        if not text.lstrip().startswith("#"): text = f"## {f.stem}\n\n" + text
        text = re.sub(r"^# ", "## ", text, flags=re.M)                      # one h1 per page
        jf = f.with_suffix(".json")
        link = f'<p class="source">Source: <code>bench/results/{f.name}</code>' + \
               (f', data: <a href="results/{jf.name}">{jf.name}</a>' if jf.exists() else "") + "</p>"
        out.append(f'<section class="bench">{md(text)}{link}</section>')
    return "\n".join(out)


def _plain(body_html: str) -> str:
    t = re.sub(r"<script.*?</script>", " ", body_html, flags=re.S)
    t = re.sub(r"<math.*?</math>", " ", t, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", t)))[:20000]


def build(out: Path, nbs: Path = ROOT / "nbs", workers: int = 2, quiet: bool = False) -> dict:
    "Process the notebooks with nbdev, render the site into `out`, write bench/results/docs.json; return its record."
    t0 = time.time()
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    from jinja2 import Environment
    from nbdev.serve import proc_nbs
    from pygments.formatters import HtmlFormatter

    log(f"1/2 nbdev: processing the notebooks in {nbs.relative_to(ROOT)} (show_doc, exports, links)")
    # nbdev writes its processed notebooks to <project>/_proc: work on a copy of the project's settings and notebooks,
    # so that builds running side by side (tests, CI) never share that folder and the checkout stays as it was
    import tempfile
    work = Path(tempfile.mkdtemp(prefix="effdata-docs-"))
    shutil.copy(ROOT / "settings.ini", work / "settings.ini")
    shutil.copytree(nbs, work / "nbs", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "_proc", "_docs"))
    from nbdev.config import get_config
    cwd = os.getcwd(); os.chdir(work)                                # nbdev finds settings.ini from the cwd...
    get_config.cache_clear()                                         # ...but caches it per process: forget any earlier build's
    try: proc = Path(proc_nbs("nbs", n_workers=workers, force=True)).resolve()
    finally:
        os.chdir(cwd); get_config.cache_clear()
    sources = sorted(p for p in nbs.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("_"))
    pages: dict[str, Page] = {}
    for src in sources:
        rel = src.relative_to(nbs).as_posix()
        done = proc / rel
        if not done.exists(): raise SystemExit(f"nbdev did not process {rel} (see the messages above)")
        depth = rel.count("/")
        page = Page(done, "../" * depth)
        page.href = (Path(rel).parent / page.output_file).as_posix() if depth else page.output_file
        pages[rel] = page

    log(f"2/2 rendering {len(pages)} notebooks and the benchmark page into {out}")
    if out.exists(): shutil.rmtree(out)
    (out / "assets").mkdir(parents=True)
    import plotly
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", out / "assets" / "plotly.min.js")
    (out / "assets" / "site.css").write_text(CSS)
    (out / "assets" / "site.js").write_text(JS)
    (out / "assets" / "pygments.css").write_text(HtmlFormatter(style="default").get_style_defs(".highlight"))

    nav = _nav(nbs / "sidebar.yml", pages)
    bench_page = {"title": "Benchmark results", "href": "benchmarks.html"}
    nav.append({"title": "Results", "pages": [bench_page]})
    tutorials = [p.href for k, p in pages.items() if k.startswith("tutorials/")]
    env = Environment(autoescape=False)
    tpl = env.from_string(PAGE)
    index, written = [], []

    def write(href, title, body, toc, root, figures, section):
        path = out / href
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tpl.render(title=html.escape(title), body=body, toc=toc, root=root, nav=nav, current=href,
                                   first_tutorial=tutorials[0] if tutorials else "index.html", figures=figures),
                        encoding="utf-8")
        written.append(href)
        index.append({"title": title, "href": href, "section": section, "text": _plain(body)})

    section_of = {p["href"]: s["title"] or "Home" for s in nav for p in s["pages"]}
    for rel, page in pages.items():
        body = page.body()
        write(page.href, page.title, body, page.md.toc, page.rel_root, page.n_figures > 0, section_of.get(page.href, ""))

    md = Markdown(lambda u: u)
    (out / "results").mkdir()
    for j in sorted((ROOT / "bench" / "results").glob("*.json")):
        if j.name != "docs.json": shutil.copy(j, out / "results" / j.name)
    write("benchmarks.html", "Benchmark results", _benchmarks_body(md, ROOT / "bench" / "results"), md.toc, "",
          False, "Results")
    (out / "search.json").write_text(json.dumps(index, separators=(",", ":")))
    shutil.rmtree(work, ignore_errors=True)

    nb_sizes = {p.relative_to(ROOT).as_posix(): p.stat().st_size for p in sources}
    record = {
        "command": "python tools/build_docs.py",
        "out": os.path.relpath(out, ROOT),
        "pages": sorted(written),
        "tutorials": sorted(tutorials),
        "largest_notebook_bytes": max(nb_sizes.values()),
        "largest_notebook": max(nb_sizes, key=nb_sizes.get),
        "nbs_bytes": sum(p.stat().st_size for p in nbs.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts),
        "notebook_bytes": nb_sizes,
        "plotly_js": f"assets/plotly.min.js (plotly {plotly.__version__}, from the installed package)",
        "seconds": round(time.time() - t0, 1),
    }
    log(f"wrote {len(written)} pages ({len(tutorials)} tutorials) in {record['seconds']} s: open {out / 'index.html'}")
    return record


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "_site"), help="folder for the site (replaced) (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="processes for nbdev's notebook step (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="only check that what the build needs is installed")
    ap.add_argument("--no-record", action="store_true", help="do not write bench/results/docs.json")
    args = ap.parse_args(argv)
    miss = missing_requirements()
    if miss:
        print("build_docs: missing " + ", ".join(miss) + ": install them with `pip install -e \".[dev]\"` "
              "(this command never installs packages)", file=sys.stderr)
        return 2
    if args.check:
        print("build_docs: everything the build needs is installed"); return 0
    record = build(Path(args.out).resolve())
    if not args.no_record:
        (ROOT / "bench" / "results" / "docs.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
