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
      anchor that does not exist;
    * hides the right-hand table of contents (``hide: [toc]``), which
      docs/overrides/partials/nav.html then shows in the navigation, so the
      notebook gets the width (docs/stylesheets/extra.css);
    * adds a line under the chapter's title that links to its sections of the
      API reference (``CHAPTER_API``).

``on_page_markdown`` and ``on_page_content``, on the API reference (docs/api/)
    mkdocstrings renders each ``::: identifier`` section from the docstrings.
    A section whose module is not in the package (yet) is left out, so that
    the pages may list modules that are still being written; each section
    that ``CHAPTER_API`` names gets a line under its heading that links to
    its chapters.  Plot-only cells (tag ``hide-input``) are rendered without
    their code by mkdocs-jupyter's ``remove_tag_config``, which ``on_config``
    requires.
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
    tags = (jupyter.config.get("remove_tag_config") or {}).get("remove_input_tags") or []
    if list(tags)[:1] != [HIDE_INPUT]:
        raise PluginError(
            f"plot-only cells are tagged {HIDE_INPUT!r} and shown without their code: set "
            f"`remove_tag_config: {{remove_input_tags: [{HIDE_INPUT}]}}` for mkdocs-jupyter in "
            "mkdocs.yml (it passes only the first tag of the list to nbconvert)"
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
    """The stored notebook behind a page of mkdocs-jupyter, or None for other
    files (and for notebooks that exclude_docs keeps out of the site)."""
    if not file.src_uri.endswith(".ipynb") or not file.is_documentation_page():
        return None
    if not file.inclusion.is_included():
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
    if page.file.src_uri.startswith(API_DIR + "/"):
        return _with_chapter_lines(html, page, files)
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
    # Wide notebook pages: the page's table of contents moves from the right
    # sidebar into the navigation on the left (docs/overrides/partials/nav.html)
    # and the content takes the room (docs/stylesheets/extra.css).
    page.meta["hide"] = [*page.meta.get("hide", []), "toc"]
    html = _with_api_line(html, page, files)
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
    _API.clear()
    _API.update(_api_sections(files))
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



# --------------------------------------------------------------------------- #
# The API reference (docs/api/*.md, rendered by mkdocstrings) and the chapters

HIDE_INPUT = "hide-input"  # the tag of plot-only cells (mkdocs.yml: remove_tag_config)
API_DIR = "api"
PACKAGE = execute_notebooks.ROOT

# What each chapter is about in the API reference: notebook (its stem) ->
# the identifiers of `::: identifier` sections of docs/api/*.md.  The hook
# links both ways: a line under the chapter's title names these sections,
# and each section's heading names its chapters.  Chapters and sections that
# do not exist (yet) are left out, so entries may come before their files.
CHAPTER_API = {
    "01_gradient_descent": ["mxopt.optimizers.sgd"],
    "02_sgd_weight_decay": ["mxopt.optimizers.sgd"],
    "03_momentum": ["mxopt.optimizers.sgd"],
    "04_nesterov": ["mxopt.optimizers.nag"],
    "05_adagrad": ["mxopt.optimizers.adagrad"],
    "06_rmsprop": ["mxopt.optimizers.rmsprop"],
    "07_adadelta": ["mxopt.optimizers.adadelta"],
    "08_adam": ["mxopt.optimizers.adam"],
    "09_adamax": ["mxopt.optimizers.adamax"],
    "10_nadam": ["mxopt.optimizers.nadam", "mxopt.momentum_scheduler"],
    "11_amsgrad": ["mxopt.optimizers.amsgrad"],
    "12_adamw": ["mxopt.optimizers.adamw"],
    "13_signum": ["mxopt.optimizers.signum", "mxopt.workers"],
    "14_lars_lbsgd": ["mxopt.optimizers.lars", "mxopt.optimizers.lbsgd"],
    "15_lamb": ["mxopt.optimizers.lamb"],
    "16_dcasgd": ["mxopt.optimizers.dcasgd", "mxopt.workers"],
    "17_ftrl": ["mxopt.optimizers.ftrl"],
    "18_ftml": ["mxopt.optimizers.ftml"],
    "19_sgld": ["mxopt.optimizers.sgld"],
    "20_schedules": ["mxopt.lr_scheduler", "mxopt.momentum_scheduler", "mxopt.optimization_state"],
    "21_custom_optimizer": ["mxopt.optimizer", "mxopt.UpdateRule"],
    "22_choosing": ["mxopt.models", "mxopt.datasets", "mxopt.lineage"],
    "23_strategies": ["mxopt.strategies", "mxopt.gradient_noise"],
    "24_many_machines": ["mxopt.kvstore", "mxopt.workers"],
}

# `::: identifier` and its indented options (mkdocstrings' syntax)
_DIRECTIVE = re.compile(r"^:::[ \t]+(\S+)[ \t]*\n(?:(?:[ \t]+\S[^\n]*|[ \t]*)(?:\n|$))*", re.M)
_HEADING_OPTION = re.compile(r"^[ \t]+heading:[ \t]*(.+?)[ \t]*$", re.M)
_H2 = re.compile(r'(<h2\b[^>]*\bid="([^"]+)"[^>]*>.*?</h2\s*>)', re.S | re.I)
_H1_END = re.compile(r"</h1\s*>", re.I)

# identifier -> (the API page's File, the section's heading), from on_files
_API: dict[str, tuple[File, str]] = {}


def _source_exists(identifier: str, root: Path = PACKAGE) -> bool:
    """Whether the package's source holds `identifier`: a module or package of
    that name, or a name its parent module's source mentions (``mxopt.UpdateRule``)."""
    parts = identifier.split(".")
    path = root.joinpath(*parts)
    if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
        return True
    parent = root.joinpath(*parts[:-1])
    for source in (parent.with_suffix(".py"), parent / "__init__.py"):
        if len(parts) > 1 and source.is_file():
            return re.search(rf"\b{re.escape(parts[-1])}\b", source.read_text(encoding="utf-8")) is not None
    return False


def api_directives(markdown: str) -> list[tuple[str, str, str]]:
    """(identifier, heading, the directive's text) of each `::: identifier` in `markdown`."""
    found = []
    for match in _DIRECTIVE.finditer(markdown):
        heading = _HEADING_OPTION.search(match.group(0))
        found.append((match.group(1), heading.group(1) if heading else match.group(1), match.group(0)))
    return found


def _api_sections(files) -> dict[str, tuple[File, str]]:
    sections = {}
    for file in files:
        if file.src_uri.startswith(API_DIR + "/") and file.src_uri.endswith(".md"):
            for identifier, heading, _ in api_directives(Path(file.abs_src_path).read_text(encoding="utf-8")):
                if _source_exists(identifier):
                    sections[identifier] = (file, heading)
    return sections


def on_page_markdown(markdown, page, config, files):
    """API pages: leave out the sections of modules that do not exist yet
    (they are listed ahead of the modules that other work is adding)."""
    if not page.file.src_uri.startswith(API_DIR + "/"):
        return markdown
    for identifier, _, text in api_directives(markdown):
        if not _source_exists(identifier):
            log.info("%s: %s is not in the package (yet); its section is left out", page.file.src_uri, identifier)
            markdown = markdown.replace(text, "", 1)
    return markdown


def _chapters(files) -> dict[str, File]:
    """The chapters (notebook stem -> File) of CHAPTER_API that the site has."""
    found = {}
    for file in files:
        if file.src_uri.startswith("notebooks/") and file.src_uri.endswith(".ipynb"):
            stem = Path(file.src_uri).stem
            if stem in CHAPTER_API and file.is_documentation_page():
                found[stem] = file
    return found


def _title(file: File) -> str:
    page = getattr(file, "page", None)
    if page is not None and page.title:
        return page.title
    return Path(file.src_uri).stem.split("_", 1)[-1].replace("_", " ").capitalize()


def _with_api_line(html: str, page, files) -> str:
    """A notebook page with a line under its title naming its API sections."""
    stem = Path(page.file.src_uri).stem
    links = []
    for identifier in CHAPTER_API.get(stem, []):
        if identifier in _API:
            file, heading = _API[identifier]
            href = f"{get_relative_url(file.url, page.url)}#{identifier}"
            label = f"<code>{heading}</code>" if " " not in heading else heading
            links.append(f'<a href="{href}">{label}</a>')
    if not links:
        return html
    line = f'<p class="mxopt-api-line">API reference: {", ".join(links)}</p>'
    end = _H1_END.search(html)
    return html[: end.end()] + line + html[end.end():] if end else line + html


def _with_chapter_lines(html: str, page, files) -> str:
    """An API page with a line under each section heading naming its chapters."""
    chapters = _chapters(files)
    by_identifier: dict[str, list[File]] = {}
    for stem, file in sorted(chapters.items()):
        for identifier in CHAPTER_API[stem]:
            by_identifier.setdefault(identifier, []).append(file)

    def add(match):
        found = by_identifier.get(match.group(2))
        if not found:
            return match.group(1)
        links = ", ".join(f'<a href="{get_relative_url(f.url, page.url)}">{_title(f)}</a>' for f in found)
        label = "Chapter" if len(found) == 1 else "Chapters"
        return f'{match.group(1)}\n<p class="mxopt-chapter-line">{label}: {links}</p>'

    return _H2.sub(add, html)
