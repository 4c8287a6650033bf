"""The guide as a reader sees it: the built site, opened in headless Chromium.

The site is built once per test session, from the notebooks and package in
this tree; its notebook pages come from the executed copies that
tools/execute_notebooks.py keeps in ``.cache/executed/`` (reused only while
the notebook, the package and the installed versions are unchanged):

* ``make test-site`` builds it with ``make site`` and passes the folder in
  ``MXOPT_SITE_DIR``; the tests refuse a folder older than any of its sources;
* otherwise the ``site`` fixture brings the executed copies up to date and
  runs ``mkdocs build --strict`` into a temporary folder.

The site is served on 127.0.0.1 (an ephemeral port) and every page is opened
in Chromium, driven by Playwright with the system's browser (no
``playwright install``).  Any request to another host is blocked and counts
as a failure, so the test also proves that the guide works with no network.
Set ``MXOPT_SITE_SCREENSHOTS=<folder>`` to keep a full-page screenshot of
every page.

Chromium comes from ``make browser-deps`` (Debian's ``chromium`` package) or
from ``$CHROMIUM``; the browser tests are skipped only where it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import unquote, urldefrag, urljoin, urlsplit
from urllib.request import urlopen

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import serve  # noqa: E402  (tools/serve.py)

CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
# Inputs of the site: a prebuilt site older than any of them is stale.
SOURCES = [
    "mkdocs.yml", "docs", "notebooks", "mxopt",
    "tools/mkdocs_hooks.py", "tools/mathjax_files.py", "tools/execute_notebooks.py",
]
NOT_SOURCES = {"vendor", "__pycache__", ".ipynb_checkpoints"}

# What the site's MathJax typesets (docs/javascripts/mathjax-config.js).
MATH_SELECTOR = (
    ".arithmatex, .jupyter-wrapper .jp-RenderedMarkdown, "
    ".jupyter-wrapper .jp-RenderedLatex, .jupyter-wrapper .jp-RenderedHTML, .md-nav--secondary"
)
MATH_DELIMITER = re.compile(r"\$|\\\(|\\\[|\\begin\{")
# TeX left in the visible text, i.e. math that was not typeset.
RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]|\\(?:begin|end)\{|\\[A-Za-z]{2,}"
    r"|(?<![\\\w$])\$(?![\s$])[^$\n]+?(?<![\s\\$])\$(?![\w$])"
)


def _nav_pages():
    """(title, source path) of every page in mkdocs.yml's nav, in order."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def walk(items):
        for item in items:
            if isinstance(item, str):
                yield None, item
            else:
                for title, value in item.items():
                    if isinstance(value, list):
                        yield from walk(value)
                    else:
                        yield title, value

    return list(walk(config["nav"]))


NAV = _nav_pages()
NOTEBOOKS = [src for _, src in NAV if src.endswith(".ipynb")]


def _page_dir(src: str) -> str:
    """Site folder of a page (use_directory_urls): notebooks/01_x.ipynb -> notebooks/01_x/."""
    stem = src.rsplit(".", 1)[0]
    return "" if stem == "index" else stem + "/"


# --------------------------------------------------------------------------- #
# The built site


def _newest_source() -> tuple[float, Path]:
    newest = (0.0, ROOT)
    for name in SOURCES:
        path = ROOT / name
        paths = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for p in paths:
            if p.is_file() and not NOT_SOURCES.intersection(p.relative_to(ROOT).parts):
                newest = max(newest, (p.stat().st_mtime, p))
    return newest


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("MXOPT_SITE_DIR")
    if given:
        site_dir = Path(given)
        if not site_dir.is_absolute():
            site_dir = ROOT / site_dir
        index = site_dir / "index.html"
        if not index.is_file():
            pytest.fail(f"MXOPT_SITE_DIR={given} holds no built site; run `make site`")
        mtime, newest = _newest_source()
        if index.stat().st_mtime < mtime:
            pytest.fail(
                f"the site in {site_dir} is older than {newest.relative_to(ROOT)}; "
                "rebuild it with `make site` (or unset MXOPT_SITE_DIR)"
            )
        return site_dir
    site_dir = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["NO_MKDOCS_2_WARNING"] = "1"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "execute_notebooks.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600,
    )
    assert proc.returncode == 0, f"executing the notebooks failed:\n{(proc.stdout + proc.stderr)[-6000:]}"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{(proc.stdout + proc.stderr)[-6000:]}"
    return site_dir


@pytest.fixture(scope="session")
def server(site):
    httpd, base = serve.start(site)
    yield base
    httpd.shutdown()
    httpd.server_close()


def _html_pages(site: Path) -> list[str]:
    """Site-relative URL of every HTML page, home first."""
    pages = []
    for path in sorted(site.rglob("*.html")):
        rel = path.relative_to(site).as_posix()
        pages.append(rel[: -len("index.html")] if rel.endswith("index.html") else rel)
    return sorted(pages, key=lambda p: (p != "", p))


# --------------------------------------------------------------------------- #
# Tests of the built files: no browser, but the site (hence the `browser`
# marker, which keeps the site build out of `make test-unit`)


@pytest.mark.browser
def test_every_nav_page_is_built(site):
    for title, src in NAV:
        page = site / _page_dir(src) / "index.html"
        assert page.is_file(), f"{title}: {src} was not built into {page}"
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((site / "index.html").read_text(encoding="utf-8"), "html.parser")
    links = [a.get_text(" ", strip=True) for a in soup.select(".md-nav--primary .md-nav__link")]
    titles = [t for t, _ in NAV if t]
    assert list(dict.fromkeys(t for t in links if t in titles)) == titles, f"navigation {links} is not {titles}"


@pytest.mark.browser
def test_notebook_pages_are_freshly_executed(site):
    """Every notebook page shows the outputs of the notebook's current executed
    copy, though the notebooks are stored without them; the copy offered for
    download next to the page is the stored notebook."""
    import execute_notebooks

    environment = execute_notebooks.environment_inputs()
    for src in NOTEBOOKS:
        stored_bytes = (ROOT / src).read_bytes()
        stored = json.loads(stored_bytes)
        code = [c for c in stored["cells"] if c["cell_type"] == "code"]
        html = (site / _page_dir(src) / "index.html").read_text()
        if code:
            assert "jp-OutputArea-output" in html, f"{src}: no cell outputs on its page"
            assert re.search(r"jp-InputPrompt[^>]*>In(?:\s|&nbsp;)\[\d+\]", html), (
                f"{src}: its page shows unexecuted cells"
            )
        for cell in code:
            assert not cell.get("outputs"), f"{src} is stored with outputs; clear them before committing"
        # the page was built from the executed copy, which is current
        copy = execute_notebooks.executed_copy(ROOT / src, environment)
        executed = json.loads(copy.read_text())
        figures = sum(
            "image/png" in out.get("data", {})
            for cell in executed["cells"] if cell["cell_type"] == "code"
            for out in cell["outputs"]
        )
        assert html.count('src="data:image/png;base64,') >= figures > 0, f"{src}: figures of {copy} missing"
        download = site / _page_dir(src) / Path(src).name
        assert download.read_bytes() == stored_bytes, f"{src}: the download is not the stored notebook"


@pytest.mark.browser
def test_plot_only_cells_show_their_output_only(site):
    """On every chapter page, the cells tagged hide-input have their outputs
    and no code; the downloadable notebook (the stored one) keeps the code."""
    from bs4 import BeautifulSoup

    import mkdocs_hooks

    tagged_total = 0
    for src in NOTEBOOKS:
        stored = json.loads((ROOT / src).read_text())
        tagged = [c for c in stored["cells"] if c["cell_type"] == "code"
                  and mkdocs_hooks.HIDE_INPUT in c.get("metadata", {}).get("tags", [])]
        tagged_total += len(tagged)
        soup = BeautifulSoup((site / _page_dir(src) / "index.html").read_text(encoding="utf-8"), "html.parser")
        cells = soup.select(f"div.jp-CodeCell.celltag_{mkdocs_hooks.HIDE_INPUT}[id]")
        assert len(cells) == len(tagged), f"{src}: {len(cells)} plot-only cells on the page, {len(tagged)} tagged"
        code = "\n".join(t.get_text() for t in soup.select(".jp-InputArea-editor"))
        for cell, page_cell in zip(tagged, cells):
            source = "".join(cell["source"]).strip()
            assert page_cell.select(".jp-OutputArea-output"), f"{src}: a plot-only cell without its output"
            assert not page_cell.select(".jp-InputArea"), f"{src}: a plot-only cell shows its code"
            assert source not in code, f"{src}: the code of a plot-only cell is on the page"
        download = json.loads((site / _page_dir(src) / Path(src).name).read_text())
        sources = ["".join(c["source"]) for c in download["cells"]]
        assert all("".join(c["source"]) in sources for c in tagged), f"{src}: the download lost a cell's code"
    assert tagged_total > 0, "no chapter has a plot-only cell: is the tag still hide-input?"


@pytest.mark.browser
def test_chapters_and_api_reference_link_both_ways(site):
    """Each chapter links, under its title, to its sections of the API
    reference; each of those sections links back to the chapter."""
    from bs4 import BeautifulSoup

    import mkdocs_hooks

    documented = _api_directives()
    soups = {}

    def soup(rel: str):
        if rel not in soups:
            soups[rel] = BeautifulSoup((site / rel).read_text(encoding="utf-8"), "html.parser")
        return soups[rel]

    checked = 0
    for src in NOTEBOOKS:
        stem = Path(src).stem
        page = _page_dir(src) + "index.html"
        api_line = soup(page).select_one(".mxopt-api-line")
        wanted = mkdocs_hooks.CHAPTER_API.get(stem, [])
        assert api_line is not None or not wanted, f"{src}: no line linking to its API reference"
        for identifier in wanted:
            api_page = "api/" + documented[identifier].removesuffix(".md") + "/index.html"
            href = next((a["href"] for a in api_line.select("a") if a["href"].endswith("#" + identifier)), None)
            assert href is not None, f"{src}: no link to the API section {identifier}"
            assert os.path.normpath(site / _page_dir(src) / href.partition("#")[0] / "index.html") == str(site / api_page)
            heading = soup(api_page).find(id=identifier)
            assert heading is not None, f"{api_page}: no section {identifier}"
            back = heading.find_next_sibling("p", class_="mxopt-chapter-line")
            assert back is not None, f"{api_page}: the section {identifier} names no chapter"
            targets = {os.path.normpath(site / "api" / documented[identifier].removesuffix(".md") / a["href"])
                       for a in back.select("a")}
            assert str(site / _page_dir(src)).rstrip("/") in targets, f"{api_page}#{identifier} does not link to {src}"
            checked += 1
    assert checked >= len(NOTEBOOKS)


def _resource_urls(soup) -> list[tuple[str, str]]:
    """(where, url) of everything an HTML page makes the browser load."""
    found = []
    attrs = {
        "script": ["src"],
        "link": ["href"],
        "img": ["src", "srcset"],
        "source": ["src", "srcset"],
        "video": ["src", "poster"],
        "audio": ["src"],
        "track": ["src"],
        "iframe": ["src"],
        "embed": ["src"],
        "object": ["data"],
        "input": ["src"],
        "image": ["href", "xlink:href"],
        "use": ["href", "xlink:href"],
        "feimage": ["href", "xlink:href"],
    }
    for tag in soup.find_all(list(attrs)):
        for attr in attrs[tag.name]:
            value = tag.get(attr)
            if value:
                for part in value.split(",") if attr == "srcset" else [value]:
                    found.append((f"<{tag.name} {attr}>", part.strip().split(" ")[0]))
    for tag in soup.find_all("meta", attrs={"http-equiv": re.compile("refresh", re.I)}):
        found.append(("<meta refresh>", tag.get("content", "").partition("url=")[2]))
    for tag in soup.find_all(style=True):
        found += [("style attribute", u) for u in _css_urls(tag["style"])]
    for tag in soup.find_all("style"):
        found += [("<style>", u) for u in _css_urls(tag.get_text())]
    return found


_CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)|@import\s+(['"])(.*?)\3""", re.S)


def _css_urls(css: str) -> list[str]:
    return [m.group(2) or m.group(4) for m in _CSS_URL.finditer(css)]


def _outside(url: str) -> bool:
    url = url.strip()
    return bool(re.match(r"(?i)(https?:)?//", url))


# URLs that third-party scripts carry but never request in this site, checked
# by the browser test below, which blocks and reports every outside request:
# (folder of the site holding the script, the URL's pattern).  The patterns
# name the package a CDN would serve, not the CDN.
DORMANT_SCRIPT_URLS = [
    # mkdocs-material: Mermaid, only for ```mermaid fences (not configured here)
    ("assets/javascripts/", re.compile(r"^https://[^/]+/mermaid@")),
    # mkdocs-material: repository facts, only with repo_url (not configured)
    ("assets/javascripts/", re.compile(r"^https://api\.github\.com/")),
    # MathJax's speech-rule engine: fallbacks for Node and Internet Explorer
    ("vendor/mathjax/", re.compile(r"^https://[^/]+/npm/(?:speech-rule-engine|sre-mathmaps-ie|wicked-good-xpath)@")),
]
# Web pages (source links in licence and code comments), never scripts.
_DOCUMENTATION_LINKS = ("https://github.com/", "http://github.com/")
_JS_URL = re.compile(r"""https?://[^\s"'`()<>\\]+""")
# What a script could load: a file type a browser fetches, a package by its
# version (a CDN's /name@version/ path), a CDN's library path, or a host that
# serves only fonts, styles and scripts.
_LOADABLE = re.compile(
    r"(?i)\.(?:m?js|css|woff2?|ttf|otf|eot|png|jpe?g|gif|svg|webp|json|wasm)(?:[?#]|$)"
    r"|^https?://[^/?#]+/(?:[^/?#]+/)*@?[\w.-]+@"
    r"|^https?://[^/?#]+/ajax/libs/"
    r"|^https?://(?:fonts\.googleapis\.com|fonts\.gstatic\.com|maxcdn\.bootstrapcdn\.com"
    r"|stackpath\.bootstrapcdn\.com|code\.jquery\.com|ajax\.googleapis\.com|polyfill\.io"
    r"|cdn\.plot\.ly|use\.fontawesome\.com|kit\.fontawesome\.com|raw\.githubusercontent\.com"
    r"|api\.github\.com)/"
)


def _dormant(rel: str, url: str) -> bool:
    return any(rel.startswith(where) and pattern.match(url) for where, pattern in DORMANT_SCRIPT_URLS)


@pytest.mark.browser
def test_no_resource_from_outside_hosts(site):
    """No page, stylesheet or script of the site loads anything from another host.

    Plain hyperlinks (<a href>, e.g. to papers) are fine; XML namespace names
    in scripts (http://www.w3.org/...) are identifiers, not requests.
    """
    from bs4 import BeautifulSoup

    problems = []
    for path in sorted(site.rglob("*")):
        rel = path.relative_to(site).as_posix()
        if path.suffix == ".html":
            soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
            for where, url in _resource_urls(soup):
                if _outside(url):
                    problems.append(f"{rel}: {where} {url}")
            for script in soup.find_all("script"):
                for url in _JS_URL.findall(script.get_text()):
                    if not url.startswith("http://www.w3.org/"):
                        problems.append(f"{rel}: inline <script> mentions {url}")
        elif path.suffix == ".css":
            for url in _css_urls(path.read_text(encoding="utf-8", errors="replace")):
                if _outside(url):
                    problems.append(f"{rel}: url() {url}")
        elif path.suffix in (".js", ".mjs"):
            for url in set(_JS_URL.findall(path.read_text(encoding="utf-8", errors="replace"))):
                if _LOADABLE.search(url) and not url.startswith(_DOCUMENTATION_LINKS) and not _dormant(rel, url):
                    problems.append(f"{rel}: script refers to {url}")
    assert not problems, "the site loads from outside hosts:\n" + "\n".join(problems)


@pytest.mark.browser
def test_links_within_the_site_resolve(site):
    """Every relative link leads to a file of the site, and every #anchor to an element."""
    from bs4 import BeautifulSoup

    soups: dict[Path, object] = {}

    def soup_of(path: Path):
        if path not in soups:
            soups[path] = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
        return soups[path]

    problems = []
    for path in sorted(site.rglob("*.html")):
        rel = path.relative_to(site).as_posix()
        for link in soup_of(path).find_all("a", href=True):
            href = link["href"]
            if re.match(r"(?i)^(?:[a-z][a-z0-9+.-]*:|//)", href):
                continue  # http:, mailto:, data: ... (outside links are not checked)
            target, _, fragment = href.partition("#")
            target = unquote(target.partition("?")[0])
            dest = path
            if target:
                base = site if target.startswith("/") else path.parent  # 404.html: from the root
                dest = Path(os.path.normpath(base / target.lstrip("/")))
                if dest.is_dir():
                    dest = dest / "index.html"
                if not dest.is_file():
                    problems.append(f"{rel}: link to a missing file: {href}")
                    continue
            if fragment and dest.suffix == ".html":
                soup = soup_of(dest)
                if soup.find(id=fragment) is None and soup.find(attrs={"name": fragment}) is None:
                    problems.append(f"{rel}: link to a missing anchor: {href}")
    assert not problems, "broken links:\n" + "\n".join(problems)


@pytest.mark.browser
def test_math_and_fonts_are_served_by_the_site(site):
    html = (site / "index.html").read_text()
    assert 'src="vendor/mathjax/tex-chtml-full.js"' in html
    assert (site / "vendor/mathjax/tex-chtml-full.js").is_file()
    fonts = list((site / "vendor/mathjax/output/chtml/fonts/woff-v2").glob("*.woff"))
    assert len(fonts) > 10, "MathJax's CHTML fonts are missing from the site"
    assert "fonts.googleapis" not in html and "fonts.gstatic" not in html


def _code_blocks(markdown: str) -> list[str]:
    return [textwrap.dedent(m) for m in re.findall(r"```python\n(.*?)```", markdown, re.S)]


def test_home_page_examples_run(capsys):
    """The two package examples on the home page work as printed."""
    np = pytest.importorskip("numpy")
    blocks = _code_blocks((ROOT / "docs" / "index.md").read_text())
    assert len(blocks) >= 2, "docs/index.md lost its package examples"
    example, trainer = blocks[0], blocks[1]
    assert len(example.strip().splitlines()) <= 12, "the ten-line example grew"
    namespace: dict = {}
    exec(compile(example, "docs/index.md (example)", "exec"), namespace)
    w = namespace["w"]
    assert np.all((w > 0.5) & (w < 1.0)), w
    namespace = {
        "mxopt": namespace["mxopt"],
        "w1": np.ones((3, 2), np.float32),
        "b1": np.zeros(2, np.float32),
        "grad_w": np.full((3, 2), 4.0, np.float32),
        "grad_b": np.full(2, -4.0, np.float32),
        "batch_size": 4,
    }
    exec(compile(trainer, "docs/index.md (trainer)", "exec"), namespace)
    # plain SGD on the first step: w - lr * grad / batch_size
    np.testing.assert_allclose(namespace["w1"], 0.9, rtol=1e-6)
    np.testing.assert_allclose(namespace["b1"], 0.1, rtol=1e-6)


def test_notation_page_follows_home():
    assert NAV[:2] == [("Home", "index.md"), ("Notation", "notation.md")], NAV[:3]
    assert (ROOT / "docs" / "notation.md").is_file()


def test_mathjax_comes_from_the_pinned_package():
    """The site's MathJax: the pinned wheel's release, its es5 build, fonts and licence."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    import mathjax_files

    root = mathjax_files.source_dir()
    assert json.loads((root / "package.json").read_text())["version"] == mathjax_files.MATHJAX
    files = mathjax_files.site_files(root)
    dest = mathjax_files.DEST
    assert files[f"{dest}/{mathjax_files.ENTRY}"] == root / "es5" / mathjax_files.ENTRY
    assert f"{dest}/LICENSE" in files
    assert f"{dest}/input/tex/extensions/ams.js" in files  # loaded on demand
    assert sum("/output/chtml/fonts/woff-v2/" in k for k in files) > 10
    assert not any(k.startswith(f"{dest}/adaptors/") for k in files)  # Node only
    assert all(path.is_file() for path in files.values())


def _site_files(tmp_path: Path, names: list[str]):
    """mkdocs Files for a repository laid out as ours: docs/, and docs/notebooks
    a symbolic link to ../notebooks, with notebooks as mkdocs-jupyter's pages."""
    from mkdocs.structure.files import File, Files
    from mkdocs_jupyter.plugin import NotebookFile

    (tmp_path / "docs").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "docs" / "notebooks").symlink_to(Path("..") / "notebooks")
    files = []
    for name in names:
        path = tmp_path / "docs" / name
        path.write_text("x")
        f = File(name, str(tmp_path / "docs"), str(tmp_path / "site"), use_directory_urls=True)
        if name.endswith(".ipynb"):
            f = NotebookFile(f, use_directory_urls=True, site_dir=str(tmp_path / "site"))
        files.append(f)
    return Files(files)


def test_notebook_links_point_at_the_site(tmp_path, caplog):
    """Links written for Jupyter from notebooks/ (to ../docs/X.md and to other
    notebooks) become relative URLs of the site's pages; others are reported."""
    pytest.importorskip("mkdocs_jupyter", reason="the docs extra is not installed")
    import mkdocs_hooks

    files = _site_files(
        tmp_path,
        ["index.md", "notation.md", "notebooks/01_a.ipynb", "notebooks/03_momentum.ipynb", "notebooks/fig.png"],
    )
    page = type("Page", (), {"file": files.get_file_from_path("notebooks/01_a.ipynb"), "url": "notebooks/01_a/"})()
    html = (
        '<a href="../docs/notation.md">N</a> <a href="../docs/notation.md#counting">C</a> '
        '<a href="../docs/index.md">H</a> <a href="03_momentum.ipynb#The-MXNet-form">M</a> '
        '<a class="x" href="fig.png">F</a> <a href="#Top">T</a> <a href="https://arxiv.org/abs/1412.6980">P</a> '
        '<a href="../mxopt/optimizer.py">S</a>'
    )
    by_path = mkdocs_hooks._files_by_path(files)
    with caplog.at_level("WARNING", logger="mkdocs.hooks.mxopt"):
        out = mkdocs_hooks._RELATIVE_LINK.sub(lambda m: mkdocs_hooks._relative_link(m, page, by_path), html)
    assert out == (
        '<a href="../../notation/">N</a> <a href="../../notation/#counting">C</a> '
        '<a href="../../">H</a> <a href="../03_momentum/#the-mxnet-form">M</a> '
        '<a class="x" href="../fig.png">F</a> <a href="#Top">T</a> <a href="https://arxiv.org/abs/1412.6980">P</a> '
        '<a href="../mxopt/optimizer.py">S</a>'
    )
    assert [r.getMessage() for r in caplog.records] == [
        "notebooks/01_a.ipynb links to ../mxopt/optimizer.py, which is not a page or file of the guide's site"
    ]


# --------------------------------------------------------------------------- #
# Plot-only cells, and the API reference with its links to the chapters


def _jupyter_settings() -> dict:
    """mkdocs-jupyter's settings in mkdocs.yml."""
    plugins = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["plugins"]
    return next(p["mkdocs-jupyter"] for p in plugins if isinstance(p, dict) and "mkdocs-jupyter" in p)


def test_plot_only_cells_render_without_their_code(tmp_path):
    """A code cell tagged hide-input shows its output and not its code, with
    the settings of mkdocs.yml, as the hook has mkdocs-jupyter convert it."""
    pytest.importorskip("mkdocs_jupyter", reason="the docs extra is not installed")
    import nbformat
    from mkdocs_jupyter import convert

    import mkdocs_hooks

    nb = nbformat.v4.new_notebook()
    shown = nbformat.v4.new_code_cell("x = 'SHOWN CODE'", execution_count=1,
                                      outputs=[nbformat.v4.new_output("stream", text="first output\n")])
    hidden = nbformat.v4.new_code_cell("draw('HIDDEN CODE')", execution_count=2,
                                       outputs=[nbformat.v4.new_output("stream", text="second output\n")])
    hidden.metadata["tags"] = ["some-other-tag", mkdocs_hooks.HIDE_INPUT]
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter"), shown, hidden]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    settings = _jupyter_settings()
    assert settings["remove_tag_config"] == {"remove_input_tags": [mkdocs_hooks.HIDE_INPUT]}
    html = convert.nb2html(str(path), theme=settings["theme"], remove_tag_config=settings["remove_tag_config"])
    assert "SHOWN CODE" in html and "first output" in html
    assert "HIDDEN CODE" not in html, "the plot-only cell's code is on the page"
    assert "second output" in html, "the plot-only cell's output is missing"


def test_the_hook_insists_on_the_hide_input_setting():
    pytest.importorskip("mkdocs_jupyter", reason="the docs extra is not installed")
    from types import SimpleNamespace

    from mkdocs.exceptions import PluginError

    import mkdocs_hooks

    def config(**settings):
        jupyter = SimpleNamespace(config={"execute": False, "cache": False, **settings})
        return SimpleNamespace(plugins={"mkdocs-jupyter": jupyter})

    ok = {"remove_tag_config": {"remove_input_tags": ["hide-input"]}}
    assert mkdocs_hooks.on_config(config(**ok)) is not None
    for wrong in ({}, {"remove_tag_config": {"remove_input_tags": ["other", "hide-input"]}},
                  {"remove_tag_config": {"remove_input_tags": "hide-input"}}):
        with pytest.raises(PluginError, match="hide-input"):
            mkdocs_hooks.on_config(config(**wrong))


def _api_directives() -> dict[str, str]:
    """identifier -> API page (docs/api/*.md) of every `::: identifier`."""
    import mkdocs_hooks

    found = {}
    for page in sorted((ROOT / "docs" / "api").glob("*.md")):
        for identifier, _, _ in mkdocs_hooks.api_directives(page.read_text(encoding="utf-8")):
            assert identifier not in found, f"{identifier} has two sections: {found[identifier]} and {page.name}"
            found[identifier] = page.name
    return found


def test_every_module_has_a_section_in_the_api_reference():
    """Each public module of the package is documented on a page of docs/api/
    (a new module needs its `::: mxopt.x` line there, in the page of its group)."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    documented = _api_directives()
    not_api = {"mxopt", "mxopt.optimizers", "mxopt.demo"}  # the package's front doors and a script
    missing = []
    for path in sorted((ROOT / "mxopt").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        name = ".".join(parts)
        if any(p.startswith("_") for p in parts) or name in not_api:
            continue
        if name not in documented:
            missing.append(name)
    assert not missing, (
        f"modules without a section in the API reference: {missing}; add `::: <module>` "
        "(with a heading and toc_label) to the page of docs/api/ where it belongs"
    )


def test_chapters_and_api_sections_are_mapped():
    """Every chapter names its sections of the API reference (the hook's
    CHAPTER_API), and every section it names is one of docs/api/."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    import mkdocs_hooks

    documented = _api_directives()
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    unmapped = [c for c in chapters if c not in mkdocs_hooks.CHAPTER_API]
    assert not unmapped, f"chapters missing from CHAPTER_API in tools/mkdocs_hooks.py: {unmapped}"
    for chapter, identifiers in mkdocs_hooks.CHAPTER_API.items():
        for identifier in identifiers:
            assert identifier in documented, f"{chapter}: {identifier} is no section of docs/api/*.md"


def test_sections_of_modules_not_yet_written_are_left_out(tmp_path, caplog):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    from types import SimpleNamespace

    import mkdocs_hooks

    pkg = tmp_path / "mxopt"
    (pkg / "optimizers").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from ._engine import UpdateRule\n")
    (pkg / "optimizers" / "__init__.py").write_text("")
    (pkg / "optimizers" / "sgd.py").write_text("")
    assert mkdocs_hooks._source_exists("mxopt.optimizers.sgd", tmp_path)
    assert mkdocs_hooks._source_exists("mxopt.optimizers", tmp_path)
    assert mkdocs_hooks._source_exists("mxopt.UpdateRule", tmp_path)
    assert not mkdocs_hooks._source_exists("mxopt.optimizers.ftrl", tmp_path)
    assert not mkdocs_hooks._source_exists("mxopt.kvstore", tmp_path)

    markdown = (
        "# Optimizers\n\n::: mxopt.optimizers.sgd\n    options:\n      heading: SGD\n\n"
        "::: mxopt.optimizers.not_written_yet\n    options:\n      heading: Later\n      toc_label: Later\n\n"
        "::: mxopt.optimizers.nag\n"
    )
    assert [d[:2] for d in mkdocs_hooks.api_directives(markdown)] == [
        ("mxopt.optimizers.sgd", "SGD"), ("mxopt.optimizers.not_written_yet", "Later"),
        ("mxopt.optimizers.nag", "mxopt.optimizers.nag")]
    page = SimpleNamespace(file=SimpleNamespace(src_uri="api/optimizers.md"))
    with caplog.at_level("INFO", logger="mkdocs.hooks.mxopt"):
        out = mkdocs_hooks.on_page_markdown(markdown, page, None, None)
    assert out == "# Optimizers\n\n::: mxopt.optimizers.sgd\n    options:\n      heading: SGD\n\n::: mxopt.optimizers.nag\n"
    assert "not_written_yet is not in the package (yet)" in caplog.text


def test_docstrings_become_markdown():
    """tools/griffe_docstrings.py: Sphinx roles, reST literal blocks and links,
    and doctests, as the API reference renders them."""
    griffe = pytest.importorskip("griffe", reason="the docs extra is not installed")
    import griffe_docstrings

    pkg = griffe.load("mxopt", search_paths=[str(ROOT)], resolve_aliases=False)
    trainer = pkg["trainer.Trainer"]
    text = (
        "Uses :class:`mxopt.Optimizer` and :meth:`step`, see :func:`~mxopt.models.fit`\n"
        "and :mod:`mxopt._engine` or :class:`NoSuchThing`. It computes::\n\n"
        "    w <- w - lr * g\n\n"
        "From `safetensors <https://github.com/huggingface/safetensors>`_.\n\n"
        "Example:\n  >>> d = {'a': [[1, 2]]}\n  >>> d['a'][0]\n  [1, 2]\n\n"
        "With :math:`g / B` and\n\n.. math::\n\n    f(x) = x^2\n\n.. code-block:: sh\n\n    mpiexec -n 4 python x.py\n\nEnd."
    )
    out = griffe_docstrings.rewrite(trainer, text)
    assert '<autoref identifier="mxopt.optimizer.Optimizer" optional><code>mxopt.Optimizer</code></autoref>' in out
    assert '<autoref identifier="mxopt.trainer.Trainer.step" optional><code>step()</code></autoref>' in out
    assert '<autoref identifier="mxopt.models.fit" optional><code>fit()</code></autoref>' in out
    assert '<autoref identifier="mxopt._engine" optional><code>mxopt._engine</code></autoref>' in out
    assert "<code>NoSuchThing</code>" in out and 'identifier="NoSuchThing"' not in out
    assert "It computes:\n\n    w <- w - lr * g" in out
    assert "[safetensors](https://github.com/huggingface/safetensors)" in out
    assert "Example:\n\n  ```pycon\n  >>> d = {'a': [[1, 2]]}\n  >>> d['a'][0]\n  [1, 2]\n  ```" in out
    assert "With \\(g / B\\) and\n\n$$\nf(x) = x^2\n$$\n" in out
    assert "```sh\nmpiexec -n 4 python x.py\n```\n\nEnd." in out


# --------------------------------------------------------------------------- #
# In the browser


def _chromium() -> str | None:
    candidates = [os.environ.get("CHROMIUM")] + [
        shutil.which(name)
        for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="session")
def browser():
    executable = _chromium()
    if executable is None:
        pytest.skip(
            "Chromium is not installed and could not be installed on this machine "
            "(`make browser-deps` installs Debian's chromium package with apt-get; "
            "or point $CHROMIUM at a Chromium/Chrome binary)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # Playwright runs the browser headless with a fresh temporary profile.
        chromium = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


class PageWatch:
    """Everything that went wrong while a page loaded."""

    def __init__(self, context, base: str):
        self.problems: list[str] = []
        origin = urlsplit(base).netloc
        self.page = context.new_page()

        def route(r):
            url = r.request.url
            if url.startswith(("data:", "blob:", "about:")) or urlsplit(url).netloc == origin:
                r.continue_()
            else:
                self.problems.append(f"request to another host (blocked): {url}")
                r.abort("blockedbyclient")

        self.page.route("**/*", route)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda err: self.problems.append(f"JavaScript error: {err}"))
        self.page.on(
            "requestfailed",
            lambda req: None
            if urlsplit(req.url).netloc != origin
            else self.problems.append(f"request failed: {req.url} ({req.failure})"),
        )
        self.page.on(
            "response",
            lambda resp: resp.status >= 400
            and self.problems.append(f"HTTP {resp.status}: {resp.url}"),
        )

    def _console(self, msg):
        if msg.type in ("error", "assert"):
            self.problems.append(f"console {msg.type}: {msg.text} ({msg.location.get('url', '')})")


_PAGE_STATE = """
(skip) => {
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!el || el.closest(skip) || !el.getClientRects().length) continue;
    if (node.nodeValue.trim()) texts.push(node.nodeValue);
  }
  return {
    math: document.documentElement.getAttribute("data-mxopt-math"),
    containers: document.querySelectorAll("mjx-container").length,
    errors: Array.from(document.querySelectorAll("mjx-merror"))
      .map(e => e.getAttribute("data-mjx-error") || e.textContent),
    images: Array.from(document.images).map(i => ({
      src: i.currentSrc.slice(0, 80), complete: i.complete, width: i.naturalWidth})),
    texts: texts,
  };
}
"""
# The page's layout at the test's width (1280 pixels, a laptop's): the page
# itself never scrolls sideways; on notebook pages, which code cells scroll
# inside their box, and how wide the figures are against their cell.
_LAYOUT = """
() => {
  const root = document.documentElement;
  const cells = Array.from(document.querySelectorAll(".jupyter-wrapper .jp-InputArea-editor .highlight-ipynb"))
    .map(box => {
      const lines = (box.querySelector("pre") || box).textContent.replace(/\\n$/, "").split("\\n");
      return {longest: Math.max(...lines.map(l => l.length)), scrolls: box.scrollWidth > box.clientWidth + 1,
              first: lines[0].slice(0, 60)};
    });
  const figures = Array.from(document.querySelectorAll(".jupyter-wrapper .jp-RenderedImage img")).map(img => ({
    width: img.getBoundingClientRect().width,
    cell: img.closest(".jp-Cell").getBoundingClientRect().width,
    src: img.currentSrc.slice(0, 40)}));
  return {pageWidth: root.scrollWidth, viewWidth: root.clientWidth, cells: cells, figures: figures,
          content: (document.querySelector(".md-content") || root).getBoundingClientRect().width};
}
"""
# Code lines up to this many characters fit a notebook page's column at the
# test's width (docs/stylesheets/extra.css sizes the code for it); a cell with
# longer lines may scroll inside its own box.
TYPICAL_LINE = 120


def _layout_problems(layout: dict, url: str) -> list[str]:
    problems = []
    if layout["pageWidth"] > layout["viewWidth"]:
        problems.append(f"the page scrolls sideways: {layout['pageWidth']} px wide in a {layout['viewWidth']} px window")
    for cell in layout["cells"]:
        if cell["scrolls"] and cell["longest"] <= TYPICAL_LINE:
            problems.append(f"a code cell with lines of at most {cell['longest']} characters scrolls sideways: "
                            f"{cell['first']!r}")
    for figure in layout["figures"]:
        if figure["width"] < 0.9 * figure["cell"]:
            problems.append(f"a figure {figure['width']:.0f} px wide in a cell of {figure['cell']:.0f} px: {figure['src']!r}")
    if url.startswith("notebooks/") and layout["content"] < 900:
        problems.append(f"the notebook's column is {layout['content']:.0f} px wide at 1280 px (its TOC should be in the navigation)")
    return problems


# Text that is not prose: code, program output, typeset math, hidden helpers.
_NOT_PROSE = (
    "pre, code, script, style, textarea, noscript, template, mjx-container, "
    ".mathjax_ignore, .tex2jax_ignore, .clipboard-copy-txt, .md-search"
)


def _expected_math(site: Path, url: str) -> int:
    """How many formulas a page has at least (0: none), from its static HTML."""
    from bs4 import BeautifulSoup

    path = site / (url + "index.html" if url == "" or url.endswith("/") else url)
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    for tag in soup.select("pre, code, script, style"):
        tag.decompose()
    arithmatex = len(soup.select(".arithmatex"))
    raw = any(MATH_DELIMITER.search(el.get_text()) for el in soup.select(MATH_SELECTOR))
    return max(arithmatex, int(raw))


class LinkCheck:
    """Whether the links of a page, as the browser resolved them, lead somewhere.

    Every link to the site's own origin is requested from the server once:
    it must answer 200, and a #fragment must name an element (id or name) of
    the HTML it serves.  Links to other hosts are not followed.
    """

    _ANCHOR = re.compile(r"""\b(?:id|name)\s*=\s*["']([^"']+)["']""")

    def __init__(self, server: str):
        self.origin = urlsplit(server).netloc
        self.served: dict[str, tuple[int, set[str]]] = {}

    def _get(self, url: str) -> tuple[int, set[str]]:
        if url not in self.served:
            try:
                with urlopen(url, timeout=30) as response:
                    status, body = response.status, response.read()
                    html = "html" in response.headers.get("Content-Type", "")
            except HTTPError as err:
                status, body, html = err.code, b"", False
            ids = set(self._ANCHOR.findall(body.decode("utf-8", "replace"))) if html else set()
            self.served[url] = (status, ids)
        return self.served[url]

    def problems(self, hrefs: list[str]) -> list[str]:
        found = []
        for href in sorted(set(hrefs)):
            parts = urlsplit(href)
            if parts.scheme not in ("http", "https") or parts.netloc != self.origin:
                continue
            url, fragment = urldefrag(href)
            status, ids = self._get(url)
            if status != 200:
                found.append(f"broken link (HTTP {status}): {href}")
            elif fragment and unquote(fragment) not in ids:
                found.append(f"link to a missing anchor: {href}")
        return found


def _wait_for(page, js: str, what: str, problems: list[str], timeout: float = 30_000) -> None:
    try:
        page.wait_for_function(js, timeout=timeout)
    except Exception as err:  # playwright's TimeoutError
        problems.append(f"timed out waiting for {what}: {str(err).splitlines()[0]}")


@pytest.mark.browser
def test_every_page_in_chromium(site, server, browser):
    pages = _html_pages(site)
    assert len(pages) >= len(NAV)
    shots = os.environ.get("MXOPT_SITE_SCREENSHOTS")
    report = {}
    links = LinkCheck(server)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    try:
        for url in pages:
            watch = PageWatch(context, server)
            page, problems = watch.page, watch.problems
            try:
                page.goto(server + url, wait_until="load", timeout=60_000)
            except Exception as err:
                problems.append(f"page did not load: {err}")
                report[url or "/"] = problems
                page.close()
                continue
            _wait_for(page, "() => document.documentElement.getAttribute('data-mxopt-math') === 'done'"
                      " || document.documentElement.getAttribute('data-mxopt-math') === 'error'",
                      "MathJax", problems)
            _wait_for(page, "() => Array.from(document.images).every(i => i.complete)", "images", problems)
            page.wait_for_timeout(200)  # let late console messages arrive
            state = page.evaluate(_PAGE_STATE, _NOT_PROSE)

            if state["math"] != "done":
                problems.append(f"MathJax did not finish typesetting (state {state['math']!r})")
            expected = _expected_math(site, url)
            if state["containers"] < expected:
                problems.append(f"{state['containers']} typeset formulas, expected at least {expected}")
            problems += [f"TeX error in a formula: {e}" for e in state["errors"]]
            for text in state["texts"]:
                raw = RAW_TEX.search(text)
                if raw:
                    problems.append(f"untypeset TeX {raw.group(0)!r} in text: {text.strip()[:120]!r}")
            for image in state["images"]:
                if not image["complete"] or image["width"] == 0:
                    problems.append(f"image did not load: {image['src']!r}")
            if url.startswith("notebooks/") and not state["images"]:
                problems.append("a notebook page without a single figure: were its plots rendered?")
            problems += _layout_problems(page.evaluate(_LAYOUT), url)
            # every link on the page as the reader gets it, navigation included
            problems += links.problems(page.evaluate("() => Array.from(document.links, a => a.href)"))
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                name = (url.strip("/").replace("/", "_") or "index").removesuffix(".html")
                page.screenshot(path=str(Path(shots) / f"{name}.png"), full_page=True)
            if problems:
                report[url or "/"] = problems
            page.close()
    finally:
        context.close()
    assert not report, "problems in the browser:\n" + "\n".join(
        f"  {url}:\n" + "\n".join(f"    - {p}" for p in problems) for url, problems in report.items()
    )


@pytest.mark.browser
@pytest.mark.parametrize("src", NOTEBOOKS)
def test_notebook_download_button(site, server, browser, src):
    """The download button of a chapter hands out the chapter's own .ipynb."""
    context = browser.new_context(accept_downloads=True, service_workers="block")
    try:
        page = context.new_page()
        page.route(
            "**/*",
            lambda r: r.continue_()
            if urlsplit(r.request.url).netloc == urlsplit(server).netloc or r.request.url.startswith("data:")
            else r.abort(),
        )
        page.goto(server + _page_dir(src), wait_until="load")
        button = page.locator("a.mxopt-download")
        assert button.count() == 1, f"{src}: no download button on its page"
        href = button.get_attribute("href")
        with page.expect_download(timeout=30_000) as info:
            button.click()
        download = info.value
        assert Path(unquote(urlsplit(download.url).path)).name == Path(src).name
        data = Path(download.path()).read_bytes()
    finally:
        context.close()
    assert data == (ROOT / src).read_bytes(), f"{src}: the downloaded notebook differs from the source"
    with urlopen(urljoin(server + _page_dir(src), href)) as response:
        assert response.status == 200
        assert json.loads(response.read())["nbformat"] == 4
