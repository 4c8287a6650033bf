"""MkDocs hooks for the mxopt guide (wired in through ``hooks:`` in mkdocs.yml).

They keep the site self-contained and its notebook pages fresh and correct.

``on_config``
    makes sure the pinned MathJax package is installed (see
    tools/mathjax_files.py); refuses to build with mkdocs-jupyter's cache
    switched on (its cache key is the notebook file alone, so a change in the
    imported ``mxopt`` package would silently reuse old outputs); lets the
    notebooks' kernels draw their figures inline even if the calling shell set
    ``MPLBACKEND``; and gives those kernels CurveZMQ keys, which silences
    ipykernel's "running over TCP without encryption" warning.

``on_files``
    adds MathJax, from the installed package, to the files of the site
    (served under ``vendor/mathjax/``): the build copies it, nothing is
    downloaded and nothing is written into docs/.

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
    if jupyter.config.get("cache", False):
        raise PluginError(
            "mkdocs-jupyter's cache is keyed on the notebook file alone and would "
            "serve stale outputs after a change in the mxopt package; keep "
            "`cache: false` in mkdocs.yml"
        )

    # ipykernel picks the inline backend only when MPLBACKEND is unset; with
    # e.g. MPLBACKEND=Agg inherited from the shell, the pages get no figures.
    if os.environ.pop("MPLBACKEND", None) is not None:
        log.info("mxopt hooks: ignoring MPLBACKEND so notebook figures render inline")

    _quiet_kernel_transport()
    return config


def _quiet_kernel_transport():
    """Let jupyter_client give the executing kernels CurveZMQ keys.

    Without keys, recent ipykernel prints "WARNING | Kernel is running over TCP
    without encryption" for every notebook of the build.  jupyter_client can
    provision the keys itself (``KernelManager.transport_encryption = "auto"``)
    for kernels that declare support; mkdocs-jupyter builds its nbconvert
    configuration in ``get_nbconvert_app``, so we add the setting there.
    Skipped where libzmq lacks Curve or the option does not exist.
    """
    try:
        import zmq
        from jupyter_client.manager import KernelManager
        from mkdocs_jupyter import nbconvert2
    except ImportError:
        return
    if not zmq.has("curve") or not KernelManager.class_traits().get("transport_encryption"):
        return
    original = nbconvert2.get_nbconvert_app
    if getattr(original, "_mxopt_wrapped", False):
        return

    def get_nbconvert_app(*args, **kwargs):
        app = original(*args, **kwargs)
        app.config.KernelManager.transport_encryption = "auto"
        return app

    get_nbconvert_app._mxopt_wrapped = True
    nbconvert2.get_nbconvert_app = get_nbconvert_app


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
    """Add MathJax, from the installed package, to the files the build copies."""
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
