#!/usr/bin/env python3
"""Execute the guide's notebooks for the site, in parallel, with a cache.

    python tools/execute_notebooks.py [NOTEBOOK ...] [--jobs N] [--timeout S] [--force]

The notebooks are stored without outputs; the site shows them executed.  Each
notebook (default: every ``notebooks/*.ipynb`` not starting with ``_``) is
run top to bottom by nbclient in a fresh kernel of this Python (the
``python3`` kernel of the virtual environment), with matplotlib's inline
backend (Agg-rendered PNG figures, no display needed), from the notebook's
own folder, as many notebooks at a time as there are cores.  The executed copy
goes to ``.cache/executed/<name>.ipynb`` and its key to
``.cache/executed/<name>.key.json``.

An executed copy is reused only while its key matches: the key is a SHA-256
hash of

* the notebook's bytes;
* every file of the ``mxopt`` package (``mxopt/**``, by path and bytes;
  ``__pycache__`` aside), which is what the notebooks import;
* the Python version and the name and version of every installed
  distribution (numpy, numba, matplotlib, scikit-learn, ipykernel, ... all of
  them, mxopt included);
* the ``NUMBA_*`` environment variables (Numba's settings; mxopt itself
  reads none), and this file's version of how a notebook is executed
  (:data:`EXECUTION`).

A change in any of these executes the notebook again; nothing else does.  The
MkDocs hook (tools/mkdocs_hooks.py) checks the same key before building a page
from an executed copy and refuses a missing or stale one, so the site never
shows outputs that the current notebook, package and dependencies would not
produce.

A cell that raises fails the notebook: no copy is written (an old one is
removed), the notebook, the cell and its traceback are printed, the other
notebooks still run (and are cached), and the exit status is 1.  So is a
notebook that runs longer than ``--timeout`` seconds in all.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CACHE = ROOT / ".cache" / "executed"
KERNEL = "python3"
# The kernel draws with matplotlib's inline backend: figures become PNG
# outputs on the page (rendered by Agg; no display is used).  MPLBACKEND=Agg
# would draw them nowhere, leaving the pages without figures.
BACKEND = "module://matplotlib_inline.backend_inline"
# How a notebook is executed; part of the key, so a change here re-executes.
EXECUTION = f"nbclient, kernel {KERNEL}, MPLBACKEND={BACKEND}, cwd=notebook folder, v1"
DEFAULT_TIMEOUT = 600.0  # seconds per notebook, all its cells together
ENV_PREFIXES = ("NUMBA_",)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# --------------------------------------------------------------------------- #
# The key


def package_dir() -> Path:
    """The folder of the ``mxopt`` package that this Python (hence the kernel) imports."""
    spec = importlib.util.find_spec("mxopt")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return ROOT / "mxopt"


def package_files(package: Path) -> dict[str, str]:
    """{path relative to the package's parent: SHA-256} of every file of the package."""
    files = {}
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package.parent)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix not in (".pyc", ".pyo"):
            files[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def installed_versions() -> dict[str, str]:
    """{distribution name: version} of everything installed for this Python, plus Python's."""
    versions = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            name = re.sub(r"[-_.]+", "-", name).lower()
            versions[name] = ",".join(sorted({versions.get(name, dist.version), dist.version}))
    versions["python"] = sys.version
    return versions


def environment_inputs(
    package: Path | None = None,
    versions: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict:
    """Everything but the notebook that an executed copy depends on."""
    environ = os.environ if environ is None else environ
    return {
        "execution": EXECUTION,
        "files": package_files(package_dir() if package is None else package),
        "versions": dict(installed_versions() if versions is None else versions),
        "env": {k: environ[k] for k in sorted(environ) if k.startswith(ENV_PREFIXES)},
    }


def notebook_inputs(notebook: bytes, environment: Mapping) -> dict:
    """What the executed copy of a notebook with these bytes depends on."""
    return {"notebook": hashlib.sha256(notebook).hexdigest(), **environment}


def cache_key(inputs: Mapping) -> str:
    """The key of an executed copy: a SHA-256 hash of its :func:`notebook_inputs`."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def describe_changes(old: Mapping, new: Mapping) -> str:
    """What differs between two :func:`notebook_inputs`, in words."""
    if not old:
        return "a key file from an older executor, without its inputs"
    found = []
    if old.get("notebook") != new["notebook"]:
        found.append("the notebook")
    for part, what in (("files", "package file"), ("versions", "installed version"), ("env", "variable")):
        a, b = old.get(part) or {}, new[part]
        names = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        if names:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            found.append(f"{what}{'s' if len(names) > 1 else ''} {shown}")
    if old.get("execution") != new["execution"]:
        found.append("the way notebooks are executed")
    return ", ".join(found) or "its key"


# --------------------------------------------------------------------------- #
# The cache


def copy_path(notebook: Path, cache: Path | None = None) -> Path:
    return (CACHE if cache is None else cache) / notebook.name


def key_path(notebook: Path, cache: Path | None = None) -> Path:
    return (CACHE if cache is None else cache) / (notebook.stem + ".key.json")


def stale_reason(notebook: Path, environment: Mapping, cache: Path | None = None) -> str | None:
    """Why the executed copy of `notebook` may not be used, or None when it is current."""
    copy, keyfile = copy_path(notebook, cache), key_path(notebook, cache)
    if not copy.is_file() or not keyfile.is_file():
        return "not executed yet"
    try:
        stored = json.loads(keyfile.read_text(encoding="utf-8"))
        key, digest = stored["key"], stored["copy_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"unreadable key file {keyfile}"
    inputs = notebook_inputs(notebook.read_bytes(), environment)
    if key != cache_key(inputs):
        old = stored.get("inputs") if isinstance(stored.get("inputs"), dict) else {}
        return f"changed since it was executed: {describe_changes(old, inputs)}"
    if digest != hashlib.sha256(copy.read_bytes()).hexdigest():
        return f"{copy} was changed after it was executed"
    return None


def executed_copy(notebook: Path, environment: Mapping | None = None, cache: Path | None = None) -> Path:
    """The current executed copy of `notebook`; raises :class:`StaleCopy` if there is none."""
    environment = environment_inputs() if environment is None else environment
    reason = stale_reason(notebook, environment, cache)
    if reason is not None:
        raise StaleCopy(notebook, reason)
    return copy_path(notebook, cache)


class StaleCopy(RuntimeError):
    """A notebook has no executed copy that matches its current key."""

    def __init__(self, notebook: Path, reason: str):
        super().__init__(f"{notebook.name}: {reason}")
        self.notebook, self.reason = notebook, reason


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _discard(notebook: Path, cache: Path | None) -> None:
    for path in (key_path(notebook, cache), copy_path(notebook, cache)):
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- #
# Execution


class NotebookFailed(RuntimeError):
    """A cell raised (or the notebook ran out of time)."""


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env["MPLBACKEND"] = BACKEND
    return env


def execute(notebook: Path, timeout: float = DEFAULT_TIMEOUT, source: bytes | None = None) -> tuple[bytes, float]:
    """Run `notebook` (or `source`, its bytes) in a fresh kernel, from the
    notebook's folder; the executed notebook's bytes and the seconds it took."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellControlSignal, CellTimeoutError, DeadKernelError

    source = notebook.read_bytes() if source is None else source
    nb = nbformat.reads(source.decode("utf-8"), as_version=4)
    start = time.monotonic()
    deadline = start + timeout
    failed: dict[str, int] = {}
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=int(timeout),
        # the whole notebook shares one budget: each cell gets what is left
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
        allow_errors=False,
        resources={"metadata": {"path": str(notebook.parent)}},
        on_cell_error=lambda cell, cell_index, execute_reply: failed.setdefault("cell", cell_index),
        on_cell_executed=lambda cell, cell_index, execute_reply: failed.update(last=cell_index),
        kernel_manager_class=kernel_manager_class(),
    )
    try:
        client.execute(env=_kernel_env())
    except (CellControlSignal, CellTimeoutError, DeadKernelError, TimeoutError, RuntimeError) as err:
        index = failed.get("cell", failed.get("last", -1) + 1)
        what = "ran out of time" if isinstance(err, (CellTimeoutError, TimeoutError)) else "failed"
        code = _code_cell_number(nb, index)
        raise NotebookFailed(
            f"{notebook.name} {what} in cell {index} (code cell {code}, counting from 1) "
            f"after {time.monotonic() - start:.1f} s:\n{_ANSI.sub('', str(err)).strip()}"
        ) from None
    return nbformat.writes(nb).encode("utf-8") + b"\n", time.monotonic() - start


def _code_cell_number(nb, index: int) -> int | str:
    if not 0 <= index < len(nb.cells):
        return "?"
    return sum(c.cell_type == "code" for c in nb.cells[: index + 1])


def kernel_manager_class(asynchronous: bool = True):
    """A jupyter_client kernel manager whose kernel talks over Unix sockets:
    the AsyncKernelManager that nbclient drives, or (``asynchronous=False``)
    the KernelManager that nbval drives.

    Over TCP, jupyter_client picks free ports by binding and releasing them,
    and the kernel binds them again a moment later: two kernels started at once
    by two processes (pytest-xdist workers, this module's pool) can be handed
    the same port, and one of them dies with "Address already in use". A Unix
    socket is a file of a name that nobody else holds: a fresh folder made for
    each kernel, so no two kernels meet and nothing is left in the notebook's
    folder."""
    import tempfile

    from jupyter_client.manager import AsyncKernelManager, KernelManager
    from traitlets import default

    class UnixSocketKernelManager(AsyncKernelManager if asynchronous else KernelManager):
        @default("transport")
        def _unix_sockets(self):
            return "ipc"

        @default("ip")
        def _socket_prefix(self):
            # sockets are named <prefix>-<n>; the folder goes when the kernel does
            self._socket_dir = tempfile.TemporaryDirectory(prefix="mxopt-kernel-")
            return os.path.join(self._socket_dir.name, "kernel")

    return UnixSocketKernelManager


def _job(notebook: Path, environment: Mapping, timeout: float, cache: Path) -> tuple[str, float]:
    """Worker: execute one notebook and store its copy and key (or discard them).

    The key is taken from the notebook's bytes as they were read for
    execution, and the package and versions as they were before it started:
    whatever changes meanwhile makes the copy stale, never wrongly current."""
    source = notebook.read_bytes()
    try:
        data, seconds = execute(notebook, timeout, source)
    except NotebookFailed:
        _discard(notebook, cache)
        raise
    store(notebook, source, data, seconds, environment, cache)
    return notebook.name, seconds


def store(notebook: Path, source: bytes, data: bytes, seconds: float, environment: Mapping,
          cache: Path | None = None) -> Path:
    """Save `data`, the executed form of `source` (the notebook's bytes when it
    was executed), as the notebook's copy, and then its key."""
    inputs = notebook_inputs(source, environment)
    copy = copy_path(notebook, cache)
    copy.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(copy, data)
    record = {
        "key": cache_key(inputs),
        "copy_sha256": hashlib.sha256(data).hexdigest(),
        "notebook": notebook.name,
        "seconds": round(seconds, 1),
        "inputs": inputs,
    }
    _write_atomically(key_path(notebook, cache), (json.dumps(record, indent=1) + "\n").encode())
    return copy


def default_notebooks() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.glob("*.ipynb") if not p.name.startswith("_"))


def _last_seconds(notebook: Path, cache: Path | None) -> float:
    try:
        return float(json.loads(key_path(notebook, cache).read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return float("inf")  # never timed: start it first


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run(
    notebooks: Iterable[Path],
    jobs: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    force: bool = False,
    cache: Path | None = None,
    out=None,
    environment: Mapping | None = None,
) -> int:
    """Bring the executed copies of `notebooks` up to date; 0 if all are, else 1."""
    out = sys.stdout if out is None else out
    cache = CACHE if cache is None else cache
    notebooks = [Path(p).resolve() for p in notebooks]
    names = [p.name for p in notebooks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        print(f"execute_notebooks: two notebooks named {', '.join(duplicates)}", file=sys.stderr)
        return 2
    missing = [p for p in notebooks if not p.is_file()]
    if missing:
        print(f"execute_notebooks: no such notebook: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    environment = environment_inputs() if environment is None else environment
    todo = []
    for nb in notebooks:
        reason = "--force" if force else stale_reason(nb, environment, cache)
        if reason is None:
            print(f"  up to date  {nb.name}", file=out)
        else:
            todo.append((nb, reason))
    if not todo:
        print(f"execute_notebooks: all {len(notebooks)} executed copies are current ({cache})", file=out)
        return 0
    # the longest first (by their last run), so that the workers finish together
    todo.sort(key=lambda item: -_last_seconds(item[0], cache))
    jobs = max(1, min(jobs or _cores(), len(todo)))
    print(f"execute_notebooks: executing {len(todo)} of {len(notebooks)} notebooks, {jobs} at a time", file=out)
    for nb, reason in todo:
        print(f"  to execute  {nb.name}: {reason}", file=out)
    out.flush()
    failures = []
    start = time.monotonic()
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {
            pool.submit(_job, nb, environment, timeout, cache): nb for nb, _ in todo
        }
        for future in concurrent.futures.as_completed(futures):
            nb = futures[future]
            try:
                name, seconds = future.result()
                print(f"  executed    {name} in {seconds:.1f} s", file=out, flush=True)
            except NotebookFailed as err:
                failures.append(str(err))
                print(f"  FAILED      {nb.name}", file=out, flush=True)
            except Exception as err:  # a worker that died, a kernel that could not start
                failures.append(f"{nb.name} could not be executed: {type(err).__name__}: {err}")
                print(f"  FAILED      {nb.name}", file=out, flush=True)
    print(f"execute_notebooks: {len(todo) - len(failures)} executed, {len(failures)} failed, "
          f"{time.monotonic() - start:.1f} s", file=out, flush=True)
    for message in failures:
        print("\n" + "=" * 78 + "\n" + message, file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="notebooks at a time (default: the cores)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per notebook")
    parser.add_argument("--force", action="store_true", help="execute even the current ones")
    parser.add_argument("--check", action="store_true", help="only say which copies are stale (exit 1 if any)")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or default_notebooks()
    if args.check:
        environment = environment_inputs()
        stale = [(nb, stale_reason(nb.resolve(), environment)) for nb in notebooks]
        for nb, reason in stale:
            print(f"  {'stale' if reason else 'current':7} {nb.name}{': ' + reason if reason else ''}")
        return 1 if any(reason for _, reason in stale) else 0
    return run(notebooks, jobs=args.jobs, timeout=args.timeout, force=args.force)


if __name__ == "__main__":
    sys.exit(main())
