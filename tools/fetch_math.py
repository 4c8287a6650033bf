#!/usr/bin/env python3
"""Fetch MathJax 3 from the npm registry into docs/vendor/mathjax (git-ignored).

The guide's pages typeset their math with a copy of MathJax that the site
serves itself, so reading the guide needs no network at all.  MathJax is
third-party code, so it is never committed: this script downloads the pinned
npm tarball, checks it against the registry's published SHA-512 integrity
value, and unpacks the parts of its ``es5/`` folder that a browser can ask for
(the combined ``tex-chtml-full.js`` component plus the lazily loaded input,
output, font, menu and accessibility files) into ``docs/vendor/mathjax``, from
where MkDocs copies it into the built site.

Usage::

    python tools/fetch_math.py            # fetch if missing or outdated
    python tools/fetch_math.py --force    # fetch again

Environment:

``MXOPT_MATHJAX_TARBALL``
    path to an already downloaded ``mathjax-<version>.tgz`` (still checked
    against the pinned hash), for machines without access to the registry.
``NPM_CONFIG_REGISTRY`` / ``npm_config_registry``
    an npm registry mirror to use instead of https://registry.npmjs.org/.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

VERSION = "3.2.2"
# `dist.integrity` of https://registry.npmjs.org/mathjax/3.2.2
INTEGRITY = (
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/"
    "FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
TARBALL_PATH = f"mathjax/-/mathjax-{VERSION}.tgz"
DEFAULT_REGISTRY = "https://registry.npmjs.org/"

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "docs" / "vendor" / "mathjax"
STAMP = ".mxopt-mathjax-version"  # a dotfile: MkDocs does not copy it
ENTRY = "tex-chtml-full.js"  # the component the site loads

# Top-level files of es5/ that are kept; its sub-folders are kept whole
# (they hold what the component loads on demand: fonts, TeX extensions,
# the SVG output the menu can switch to, the accessibility tools).
KEEP_TOP = {ENTRY, "core.js", "loader.js", "startup.js"}
DROP_DIRS = {"adaptors"}  # liteDOM adaptors, for Node only


def is_current(dest: Path = DEST) -> bool:
    stamp = dest / STAMP
    return (
        stamp.is_file()
        and stamp.read_text().strip() == VERSION
        and (dest / ENTRY).is_file()
        and (dest / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    )


def _download() -> bytes:
    local = os.environ.get("MXOPT_MATHJAX_TARBALL")
    if local:
        return Path(local).read_bytes()
    registry = (
        os.environ.get("NPM_CONFIG_REGISTRY")
        or os.environ.get("npm_config_registry")
        or DEFAULT_REGISTRY
    )
    url = registry.rstrip("/") + "/" + TARBALL_PATH
    print(f"fetch_math: downloading {url}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def _check(data: bytes) -> None:
    algo, _, expected = INTEGRITY.partition("-")
    digest = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if digest != expected:
        raise SystemExit(
            f"fetch_math: mathjax-{VERSION}.tgz does not match its pinned "
            f"{algo} integrity value; refusing to use it"
        )


def _wanted(name: str) -> str | None:
    """Path below es5/ for a tarball member that is kept, else None."""
    prefix = "package/es5/"
    if name == "package/LICENSE":
        return "LICENSE"
    if not name.startswith(prefix):
        return None
    rel = name[len(prefix):]
    head, sep, _ = rel.partition("/")
    if not sep:
        return rel if rel in KEEP_TOP else None
    return None if head in DROP_DIRS else rel


def fetch(dest: Path = DEST) -> None:
    data = _download()
    _check(data)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".mathjax-", dir=dest.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                rel = _wanted(member.name)
                if rel is None or not member.isfile():
                    continue
                target = (tmp / rel).resolve()
                if not target.is_relative_to(tmp.resolve()):
                    raise SystemExit(f"fetch_math: unsafe path in tarball: {member.name}")
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        (tmp / STAMP).write_text(VERSION + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    print(f"fetch_math: MathJax {VERSION} unpacked into {dest}", file=sys.stderr)


def ensure(dest: Path = DEST) -> None:
    if not is_current(dest):
        fetch(dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="fetch even if present")
    args = parser.parse_args(argv)
    if args.force or not is_current():
        fetch()
    else:
        print(f"fetch_math: MathJax {VERSION} already in {DEST}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
