"""MathJax 3 for the guide's site, taken from an installed Python package.

The guide's pages typeset their math with a copy of MathJax that the site
serves itself, so reading the guide needs no network at all.  MathJax is
third-party code and is never committed.  It comes from the wheel of the
``django-static-mathjax`` distribution (pinned in the ``docs`` extra of
pyproject.toml, installed by pip like every other dependency): a package
without dependencies whose ``mathjax/static/mathjax/`` folder is MathJax's own
release tree, including the ready-built ``es5/`` folder a browser loads.

:func:`site_files` lists what the site needs from that folder (the combined
``tex-chtml-full.js`` component plus the input, output, font, menu and
accessibility files it loads on demand, and MathJax's licence); the MkDocs
hook (tools/mkdocs_hooks.py) adds these files to the build, which copies them
into ``site/vendor/mathjax/``.  Nothing is downloaded and nothing is written
into docs/.

    python tools/mathjax_files.py      # where MathJax is, and how many files the site takes
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from importlib.util import find_spec
from pathlib import Path

DISTRIBUTION = "django-static-mathjax"  # the pip package; its pin is in pyproject.toml
PACKAGE = "mathjax"  # the import package it installs
MATHJAX = "3.2.2"  # the MathJax release docs/javascripts/mathjax-config.js is written for
DEST = "vendor/mathjax"  # where the site serves it (mkdocs.yml's extra_javascript)
ENTRY = "tex-chtml-full.js"  # the component the pages load

# Top-level files of es5/ that are kept; its sub-folders are kept whole (they
# hold what the component loads on demand: TeX extensions, fonts, the SVG
# output the menu can switch to, the accessibility tools and their maps).
KEEP_TOP = {ENTRY, "core.js", "loader.js", "startup.js"}
DROP_DIRS = {"adaptors"}  # liteDOM adaptors, for Node only


class MathJaxMissing(RuntimeError):
    """The pinned MathJax package is not installed (or is not what we expect)."""


def _hint() -> str:
    return (
        f"install the guide's dependencies with `pip install -e '.[docs]'` "
        f"(the docs extra pins {DISTRIBUTION})"
    )


def source_dir() -> Path:
    """The installed MathJax release tree (the folder holding es5/ and LICENSE)."""
    try:
        importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise MathJaxMissing(f"the Python package {DISTRIBUTION} is not installed; {_hint()}") from None
    spec = find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MathJaxMissing(f"{DISTRIBUTION} is installed but `{PACKAGE}` cannot be imported; {_hint()}")
    root = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"
    try:
        version = json.loads((root / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError) as err:
        raise MathJaxMissing(f"{root} holds no MathJax release ({err}); {_hint()}") from None
    if version != MATHJAX:
        raise MathJaxMissing(
            f"{DISTRIBUTION} ships MathJax {version}, but the guide is set up for "
            f"MathJax {MATHJAX}; {_hint()}"
        )
    if not (root / "es5" / ENTRY).is_file():
        raise MathJaxMissing(f"{root / 'es5' / ENTRY} is missing; {_hint()}")
    return root


def _kept(rel: str) -> bool:
    """Whether es5/`rel` (a POSIX path) is served by the site."""
    head, sep, _ = rel.partition("/")
    return head not in DROP_DIRS if sep else rel in KEEP_TOP


def site_files(root: Path | None = None) -> dict[str, Path]:
    """{path in the site: installed file} of every MathJax file the site serves."""
    root = source_dir() if root is None else root
    es5 = root / "es5"
    files = {f"{DEST}/LICENSE": root / "LICENSE"}
    for path in sorted(es5.rglob("*")):
        rel = path.relative_to(es5).as_posix()
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(es5).parts) and _kept(rel):
            files[f"{DEST}/{rel}"] = path
    return files


def main() -> int:
    try:
        root = source_dir()
    except MathJaxMissing as err:
        print(f"mathjax_files: {err}", file=sys.stderr)
        return 1
    files = site_files(root)
    size = sum(p.stat().st_size for p in files.values())
    print(f"MathJax {MATHJAX} from {root}: {len(files)} files, {size / 2**20:.1f} MiB, served under {DEST}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
