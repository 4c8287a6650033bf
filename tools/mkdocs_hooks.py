"""MkDocs hooks for the mxopt guide (wired in through ``hooks:`` in mkdocs.yml).

They keep the site self-contained and its notebook pages fresh and correct.

``on_config``
    makes sure the pinned MathJax package is installed (see
    tools/mathjax_files.py) and that mkdocs-jupyter neither executes the
    notebooks nor caches its pages (its cache key is the stored notebook alone,
    so it would serve old outputs after a change in the ``mxopt`` package).

``on_files``
    adds MathJax, from the installed package, to the files of the site
    (served under ``vendor/mathjax/``): the build copies it, nothing is
    downloaded and nothing is written into docs/.  It also checks that every
    notebook page has a current executed copy (tools/execute_notebooks.py:
    ``.cache/executed/``, keyed on the notebook, the package's sources and the
    installed versions) and fails the build, naming the notebooks and the
    command to run, when one is missing or stale.

``on_pre_page``, on notebook pages
    builds the page from the notebook's executed copy (checked again, when the
    page is rendered, against the current key) instead of the stored notebook,
    which has no outputs; the download button and the copy next to the page
    remain the stored notebook, without outputs.  nbconvert's HTML of each
    executed copy is kept in ``.cache/pages/``, keyed on the copy's bytes,
    mkdocs-jupyter's settings and every installed version, so a build with
    nothing changed converts nothing; ``on_post_build`` removes the entries
    the build did not use, and fails the build if the package or an installed
    version changed while it ran.

``on_page_content``, on notebook pages
    * removes the parts of nbconvert's HTML that would load code from other
      hosts: its MathJax 2 loader (the site loads its own MathJax 3 on every
      page), its Mermaid loader (from a CDN), and the Font Awesome stylesheet
      that matplotlib's ``to_jshtml()`` animations link to
      (docs/stylesheets/extra.css draws the animation buttons instead);
      anything else that would still load from outside is reported as a
      warning, which fails the ``--strict`` build;
    * points relative links, written for Jupyter and GitHub from the
      notebooks' folder, at the site: ``[Momentum](03_momentum.ipynb#Some-heading)``
      at the chapter's page, ``[notation](../docs/notation.md#counting)`` at the
      notation page; any file of the site is found by where it lies in the
      repository.  Jupyter's heading anchors in links to notebooks
      (``#Some-heading``) become the ids that headings get on the site
      (``#some-heading``).  A relative link to a file that is not part of the
      site is reported as a warning (it would be a broken link);
    * rebuilds the page's table of contents from the headings actually on it:
      mkdocs-jupyter derives it from a copy of the Markdown with inline code
      removed, so a heading such as "The `mxopt` rule" got a link to an
      anchor that does not exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File
from mkdocs.structure.toc import get_toc
from mkdocs.utils import get_relative_url

_TOOLS = str(Path(__file__).resolve().parent)
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)
import execute_notebooks  # noqa: E402  (tools/execute_notebooks.py)
import mathjax_files  # noqa: E402  (tools/mathjax_files.py)

log = logging.getLogger("mkdocs.hooks.mxopt")

# nbconvert's base/mathjax.html.j2: a <script src="{{mathjax_url}}"> (empty
# here) and a MathJax 2 configuration block.
_MATHJAX2 = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
# nbconvert's base/mermaidjs.html.j2: imports Mermaid from a CDN when a page
# has diagrams.
_MERMAID = re.compile(
    r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded", async \(\) => \{'
    r'\s*const diagrams = document\.querySelectorAll\("\.jp-Mermaid.*?'
    r"<!-- End of mermaid configuration -->",
    re.S,
)
# matplotlib's animation/_animation_data.py (JS_INCLUDE of to_jshtml()).
_FONT_AWESOME = re.compile(
    r"""<link\b[^>]*\bhref=["'](?:https?:)?//[^"']*font-awesome[^"']*["'][^>]*>""", re.I
)
# Whatever would still make the browser fetch from another host.
_OUTSIDE = re.compile(
    r"""<(?:script|link|img|iframe|source|video|audio|embed|track)\b[^>]*"""
    r"""\b(?:src|href|srcset|poster)\s*=\s*["']?\s*(?:https?:)?//[^"'\s>]+"""
    r"""|url\(\s*["']?\s*(?:https?:)?//[^)]+\)"""
    r"""|@import\s+["']?\s*(?:https?:)?//[^;]+"""
    r"""|import\(\s*["'`]\s*(?:https?:)?//[^)]+\)""",
    re.I,
)


# Headings as nbconvert renders them: <h2 id="...">Text<a class="anchor-link" ...>¶</a></h2>
_HEADING = re.compile(r'<h([1-6])\b[^>]*?\bid="([^"]+)"[^>]*>(.*?)</h\1\s*>', re.S | re.I)
_ANCHOR_LINK = re.compile(r'<a\b[^>]*\bclass="anchor-link"[^>]*>.*?</a>', re.S)
_TAG = re.compile(r"<[^>]*>")
# A relative link with a path: href="03_momentum.ipynb#anchor", href="../docs/notation.md"
# (no scheme, no host, not from the root, not a bare #fragment)
_RELATIVE_LINK = re.compile(r'(<a\b[^>]*?\bhref=")([^":?#/][^":?#]*)(\?[^"#]*)?(#[^"]*)?"', re.I)
_ID = re.compile(r'\bid="([^"]+)"')
# A link within the page: href="#Some-heading"
_FRAGMENT_LINK = re.compile(r'(<a\b[^>]*?\bhref=")#([^"]+)"', re.I)


def on_config(config):
    try:
        mathjax_files.source_dir()
    except mathjax_files.MathJaxMissing as err:
        raise PluginError(str(err)) from err

    jupyter = config.plugins.get("mkdocs-jupyter")
    if jupyter is None:
        raise PluginError("mkdocs.yml must enable the mkdocs-jupyter plugin")
    if jupyter.config.get("execute", False):
        raise PluginError(
            "the notebooks are executed by tools/execute_notebooks.py (cached, in "
            "parallel) and the pages built from its copies; keep `execute: false` "
            "for mkdocs-jupyter in mkdocs.yml"
        )
    if jupyter.config.get("cache", False):
        raise PluginError(
            "mkdocs-jupyter's cache is keyed on the stored notebook alone and would "
            "serve stale outputs after a change in the mxopt package; keep "
            "`cache: false` in mkdocs.yml (tools/execute_notebooks.py caches the "
            "executions, keyed on everything they depend on)"
        )
    return config


# What, besides the notebook, the executed copies depend on (their key's other
# inputs), taken at the start of each build.
_ENVIRONMENT: dict[str, dict] = {}
_RUN_EXECUTOR = "make site, or .venv/bin/python tools/execute_notebooks.py"


def on_pre_build(config):
    _ENVIRONMENT["inputs"] = execute_notebooks.environment_inputs()
    _USED_PAGES.clear()


def on_post_build(config):
    """Forget the pages no build uses any more; fail the build if the package or
    an installed version changed while it ran."""
    if PAGE_CACHE.is_dir() and _USED_PAGES:
        for old in PAGE_CACHE.glob("*.html"):
            if old not in _USED_PAGES:
                old.unlink(missing_ok=True)
    _USED_PAGES.clear()
    now = execute_notebooks.environment_inputs()
    if now != _ENVIRONMENT["inputs"]:
        changed = execute_notebooks.describe_changes({"notebook": None, **_ENVIRONMENT["inputs"]}, {"notebook": None, **now})
        raise PluginError(
            f"{changed} changed during the build, so its notebook pages may be stale; "
            f"build again ({_RUN_EXECUTOR})"
        )


def _notebook(file) -> Path | None:
    """The stored notebook behind a page of mkdocs-jupyter, or None for other files."""
    if not file.src_uri.endswith(".ipynb") or not file.is_documentation_page():
        return None
    return Path(os.path.realpath(file.abs_src_path))


def _executed_copy(notebook: Path) -> Path:
    """The notebook's executed copy, checked again as the page is rendered
    (the package and versions are checked once more after the build)."""
    try:
        return execute_notebooks.executed_copy(notebook, _ENVIRONMENT["inputs"])
    except execute_notebooks.StaleCopy as err:
        raise PluginError(
            f"no current executed copy of {notebook.name} ({err.reason}); "
            f"execute the notebooks first: {_RUN_EXECUTOR}"
        ) from None


def on_pre_page(page, config, files):
    """Render a notebook page from its executed copy (mkdocs-jupyter reads the
    notebook at ``page.file.abs_src_path`` while it renders; the stored
    notebook's path is back in place for everything else: links, download)."""
    notebook = _notebook(page.file)
    if notebook is None:
        return page
    render = page.render
    plugin = config.plugins["mkdocs-jupyter"].config

    def render_executed(config, files):
        copy = _executed_copy(notebook)
        cached = _page_cache_path(copy, plugin)
        _USED_PAGES.add(cached)
        if cached.is_file() and plugin["ignore_h1_titles"]:  # (else the page's title comes from the render)
            page.content = cached.read_text(encoding="utf-8")
            return  # (on_page_content rebuilds the table of contents from it)
        stored = page.file.abs_src_path
        page.file.abs_src_path = str(copy)
        try:
            render(config, files)
        finally:
            page.file.abs_src_path = stored
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        tmp.write_text(page.content, encoding="utf-8")
        os.replace(tmp, cached)

    page.render = render_executed
    return page


# nbconvert's HTML of each executed copy, reused while the copy, the plugin's
# settings and every installed version (nbconvert, mkdocs-jupyter, Pygments, ...)
# are unchanged; entries no build used are removed after the build.
PAGE_CACHE = execute_notebooks.ROOT / ".cache" / "pages"
_USED_PAGES: set[Path] = set()


def _page_cache_path(copy: Path, plugin) -> Path:
    h = hashlib.sha256()
    for part in (
        copy.read_bytes(),
        json.dumps(dict(plugin), sort_keys=True, default=repr).encode(),
        json.dumps(_ENVIRONMENT["inputs"]["versions"], sort_keys=True).encode(),
    ):
        h.update(hashlib.sha256(part).digest())
    return PAGE_CACHE / f"{copy.stem}-{h.hexdigest()[:32]}.html"


def on_page_content(html, page, config, files):
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    html, found = _MATHJAX2.subn("", html, count=1)
    if not found:
        log.debug("mxopt hooks: no nbconvert MathJax block on %s", page.file.src_uri)
    html = _MERMAID.sub("", html, count=1)
    if 'class="jp-Mermaid' in html:
        log.warning(
            "%s: Mermaid diagrams need a script from a CDN and are not supported "
            "in the offline guide; draw the diagram with matplotlib instead",
            page.file.src_uri,
        )
    html = _FONT_AWESOME.sub("", html)

    by_path = _files_by_path(files)
    html = _RELATIVE_LINK.sub(lambda m: _relative_link(m, page, by_path), html)
    ids = set(_ID.findall(html))
    html = _FRAGMENT_LINK.sub(
        lambda m: m.group(0) if m.group(2) in ids else f'{m.group(1)}#{_heading_id(m.group(2))}"',
        html,
    )

    # nbconvert's heading ids also serve the table of contents.
    toc_depth = config.plugins["mkdocs-jupyter"].config.get("toc_depth", 6)
    page.toc = get_toc(_toc_tokens(html, toc_depth))
    for match in _OUTSIDE.finditer(html):
        log.warning(
            "%s loads something from another host, which the offline guide "
            "cannot do: %s",
            page.file.src_uri,
            match.group(0)[:200],
        )
    return html


def _toc_tokens(html: str, depth: int) -> list[dict]:
    """Nested table-of-contents tokens (as mkdocs' get_toc takes them) of the
    headings with an id in `html`, down to level `depth`."""
    tokens: list[dict] = []
    open_: list[dict] = []
    for match in _HEADING.finditer(html):
        level = int(match.group(1))
        if level > depth:
            continue
        name = _TAG.sub("", _ANCHOR_LINK.sub("", match.group(3))).strip()
        token = {"level": level, "id": match.group(2), "name": name, "children": []}
        while open_ and open_[-1]["level"] >= level:
            open_.pop()
        (open_[-1]["children"] if open_ else tokens).append(token)
        open_.append(token)
    return tokens


def _files_by_path(files) -> dict[str, File]:
    """The files of the site by the real path of their source.

    Notebooks are read through the docs/notebooks symbolic link; their real
    path is where they lie in the repository, where Jupyter resolves links.
    """
    return {os.path.realpath(f.abs_src_path): f for f in files if f.abs_src_path}


def _relative_link(match, page, by_path: dict[str, File]) -> str:
    """The href of a relative link in a notebook, pointed at the site's URL.

    The link was written for Jupyter (and GitHub), from the folder where the
    notebook lies in the repository: ``03_momentum.ipynb#Heading`` or
    ``../docs/notation.md#counting``.  Whatever file of the site it names gets
    the URL of that file's page (or of the file), relative to this page.
    """
    start, target, query, anchor = (g or "" for g in match.groups())
    here = os.path.dirname(os.path.realpath(page.file.abs_src_path))
    linked = by_path.get(os.path.realpath(os.path.join(here, unquote(target))))
    if linked is None:
        log.warning(
            "%s links to %s, which is not a page or file of the guide's site",
            page.file.src_uri,
            target,
        )
        return match.group(0)
    if anchor and linked.src_uri.endswith(".ipynb"):
        anchor = "#" + _heading_id(anchor[1:])
    return f'{start}{get_relative_url(linked.url, page.url)}{query}{anchor}"'


def on_files(files, config):
    """Add MathJax, from the installed package, to the files the build copies;
    check that every notebook page has a current executed copy."""
    stale = []
    for file in files:
        notebook = _notebook(file)
        if notebook is not None:
            reason = execute_notebooks.stale_reason(notebook, _ENVIRONMENT["inputs"])
            if reason is not None:
                stale.append(f"  {notebook.name}: {reason}")
    if stale:
        raise PluginError(
            "these notebooks have no current executed copy in "
            f"{os.path.relpath(execute_notebooks.CACHE, execute_notebooks.ROOT)}/ and the site is never "
            f"built from unexecuted or stale notebooks:\n" + "\n".join(stale)
            + f"\nexecute them first: {_RUN_EXECUTOR}"
        )
    for src_uri, path in mathjax_files.site_files().items():
        stale = files.get_file_from_path(src_uri)
        if stale is not None:  # e.g. an old docs/vendor/mathjax copy
            files.remove(stale)
        files.append(File.generated(config, src_uri, abs_src_path=str(path)))
    return files


def _heading_id(fragment: str) -> str:
    """The site's id for a heading that Jupyter would call `fragment`.

    Jupyter's anchors are the heading's text with "-" for spaces; nbconvert,
    as called by mkdocs-jupyter, gives the heading the slug of that text
    (lower case, punctuation dropped), which maps both to the same id.
    """
    from mkdocs_jupyter.utils import slugify

    return slugify(unquote(fragment).replace("-", " ")) or fragment
