"""The executed notebooks behind the site (tools/execute_notebooks.py) and the
MkDocs hook that builds the pages from them (tools/mkdocs_hooks.py).

An executed copy may be used only while its key matches: the key covers the
notebook's bytes, every file of the mxopt package, every installed version
and the NUMBA_* variables.  These tests change each input in turn,
tamper with the cache, execute small notebooks for real (one that raises, one
that runs out of time), and check that the hook renders a page from the
current executed copy, refuses a stale one, and leaves the stored notebook in
place for the download button.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import execute_notebooks as ex  # noqa: E402  (tools/execute_notebooks.py)

ENVIRONMENT_INPUTS = ex.environment_inputs  # (the hook's tests replace the module's)
VERSIONS = {"numpy": "2.3.0", "numba": "0.62.0", "matplotlib": "3.10.0", "python": "3.11.9"}


def _notebook(*sources: str) -> bytes:
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": s}
        for i, s in enumerate(sources)
    ]
    nb = {
        "cells": [{"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# A chapter"}, *cells],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return (json.dumps(nb, indent=1) + "\n").encode()


@pytest.fixture
def package(tmp_path) -> Path:
    pkg = tmp_path / "src" / "mxopt"
    (pkg / "optimizers").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .optimizers.sgd import *\n")
    (pkg / "optimizers" / "__init__.py").write_text("")
    (pkg / "optimizers" / "sgd.py").write_text("def rule(w, g, lr):\n    return w - lr * g\n")
    return pkg


def _key(notebook: bytes, package: Path, versions=VERSIONS, environ=None) -> str:
    environment = ex.environment_inputs(package, versions, {} if environ is None else environ)
    return ex.cache_key(ex.notebook_inputs(notebook, environment))


# --------------------------------------------------------------------------- #
# The key


def test_key_is_a_function_of_its_inputs(package):
    nb = _notebook("x = 1")
    assert _key(nb, package) == _key(nb, package)
    assert len(_key(nb, package)) == 64


def test_key_changes_with_the_notebook(package):
    assert _key(_notebook("x = 1"), package) != _key(_notebook("x = 2"), package)
    assert _key(_notebook("x = 1"), package) != _key(_notebook("x = 1") + b" ", package)


def test_key_changes_with_any_package_file(package):
    nb = _notebook("import mxopt")
    before = _key(nb, package)
    rule = package / "optimizers" / "sgd.py"
    rule.write_text(rule.read_text().replace("w - lr * g", "w - g * lr"))
    edited = _key(nb, package)
    assert edited != before
    (package / "optimizers" / "adam.py").write_text("")  # a new, empty module
    added = _key(nb, package)
    assert added not in (before, edited)
    (package / "lineage.json").write_text("{}")  # data files count too
    assert _key(nb, package) not in (before, edited, added)
    (package / "lineage.json").unlink()
    (package / "optimizers" / "adam.py").rename(package / "optimizers" / "adamw.py")  # a renamed one
    assert _key(nb, package) not in (before, edited, added)


def test_key_ignores_bytecode(package):
    nb = _notebook("import mxopt")
    before = _key(nb, package)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\x00" * 16)
    (package / "optimizers" / "sgd.pyc").write_bytes(b"\x00" * 16)
    assert _key(nb, package) == before


@pytest.mark.parametrize(
    "versions",
    [
        {**VERSIONS, "numpy": "2.3.1"},
        {**VERSIONS, "python": "3.11.10"},
        {**VERSIONS, "scikit-learn": "1.7.0"},  # a distribution installed
        {k: v for k, v in VERSIONS.items() if k != "numba"},  # one removed
    ],
)
def test_key_changes_with_any_installed_version(package, versions):
    nb = _notebook("import numpy")
    assert _key(nb, package, versions) != _key(nb, package)


def test_key_changes_with_numba_variables_only(package):
    nb = _notebook("import mxopt")
    base = _key(nb, package, environ={"HOME": "/a"})
    assert _key(nb, package, environ={"HOME": "/b", "TERM": "x", "MXOPT_SITE_DIR": "site"}) == base
    assert _key(nb, package, environ={"HOME": "/a", "NUMBA_ENABLE_CUDASIM": "1"}) != base
    assert _key(nb, package, environ={"HOME": "/a", "NUMBA_OPT": "0"}) != base


def test_the_real_environment_covers_the_stack():
    """The key of the real build sees the package the kernel imports and the
    versions of what the notebooks use."""
    inputs = ex.environment_inputs()
    assert ex.package_dir() == ROOT / "mxopt"
    assert "mxopt/optimizer.py" in inputs["files"] and "mxopt/optimizers/adam.py" in inputs["files"]
    for name in ("numpy", "numba", "matplotlib", "scikit-learn", "ipykernel", "mxopt", "python"):
        assert name in inputs["versions"], name
    assert inputs["versions"]["python"] == sys.version


# --------------------------------------------------------------------------- #
# The cache: a copy is used only under its current key


@pytest.fixture
def stored(tmp_path, package):
    """A notebook, its environment and a cache holding a copy made under them."""
    nb = tmp_path / "nbs" / "01_x.ipynb"
    nb.parent.mkdir()
    nb.write_bytes(_notebook("x = 1"))
    environment = ex.environment_inputs(package, VERSIONS, {})
    cache = tmp_path / "cache"
    copy = ex.store(nb, nb.read_bytes(), b'{"executed": true}\n', 1.5, environment, cache)
    return nb, environment, cache, copy


def test_a_current_copy_is_used(stored):
    nb, environment, cache, copy = stored
    assert ex.stale_reason(nb, environment, cache) is None
    assert ex.executed_copy(nb, environment, cache) == copy == cache / "01_x.ipynb"
    record = json.loads((cache / "01_x.key.json").read_text())
    assert record["seconds"] == 1.5 and record["inputs"]["files"]


def _assert_stale(nb, environment, cache, *words):
    reason = ex.stale_reason(nb, environment, cache)
    assert reason is not None
    for word in words:
        assert word in reason, reason
    with pytest.raises(ex.StaleCopy, match=nb.name):
        ex.executed_copy(nb, environment, cache)


def test_a_changed_notebook_makes_the_copy_stale(stored):
    nb, environment, cache, _ = stored
    nb.write_bytes(_notebook("x = 2"))
    _assert_stale(nb, environment, cache, "the notebook")


def test_a_changed_package_file_makes_the_copy_stale(stored, package):
    nb, _, cache, _ = stored
    (package / "optimizers" / "sgd.py").write_text("def rule(w, g, lr):\n    return w\n")
    _assert_stale(nb, ex.environment_inputs(package, VERSIONS, {}), cache, "mxopt/optimizers/sgd.py")


def test_a_changed_version_makes_the_copy_stale(stored, package):
    nb, _, cache, _ = stored
    environment = ex.environment_inputs(package, {**VERSIONS, "numba": "0.63.0"}, {})
    _assert_stale(nb, environment, cache, "installed version numba")


def test_a_missing_or_tampered_copy_is_never_used(stored):
    nb, environment, cache, copy = stored
    copy.write_bytes(b'{"edited": true}\n')
    _assert_stale(nb, environment, cache, "changed after it was executed")
    copy.unlink()
    _assert_stale(nb, environment, cache, "not executed yet")
    other = nb.with_name("02_y.ipynb")
    other.write_bytes(_notebook("y = 1"))
    _assert_stale(other, environment, cache, "not executed yet")


def test_a_broken_key_file_is_never_trusted(stored):
    nb, environment, cache, _ = stored
    (cache / "01_x.key.json").write_text("{not json")
    _assert_stale(nb, environment, cache, "unreadable key file")


# --------------------------------------------------------------------------- #
# Executing for real (small notebooks, a kernel each)


@pytest.fixture
def runnable(tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    folder = tmp_path / "nbs"
    folder.mkdir()
    return folder


@pytest.fixture
def fixed(package):
    """An environment that stays put while the tests run (the checkout's mxopt may not)."""
    return ex.environment_inputs(package, VERSIONS, {})


def test_execute_writes_outputs_and_reuses_them(runnable, tmp_path, fixed):
    ok = runnable / "01_ok.ipynb"
    source = _notebook(
        "import os, matplotlib\nprint(os.path.basename(os.getcwd()), matplotlib.get_backend())",
        "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()",
    )
    ok.write_bytes(source)
    cache = tmp_path / "cache"
    log = io.StringIO()
    assert ex.run([ok], jobs=1, timeout=120, cache=cache, out=log, environment=fixed) == 0, log.getvalue()
    assert "executed    01_ok.ipynb" in log.getvalue()
    executed = json.loads((cache / "01_ok.ipynb").read_text())
    first, second = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert first["execution_count"] == 1 and second["execution_count"] == 2
    text = "".join("".join(o.get("text", "")) for o in first["outputs"])
    assert text.startswith("nbs ") and "inline" in text  # the notebook's folder, figures inline
    assert any("image/png" in o.get("data", {}) for o in second["outputs"]), "no figure in the copy"
    assert ok.read_bytes() == source  # the stored notebook keeps no outputs
    # nothing changed: nothing is executed
    log = io.StringIO()
    assert ex.run([ok], jobs=1, timeout=120, cache=cache, out=log, environment=fixed) == 0
    assert "up to date  01_ok.ipynb" in log.getvalue() and "executed    " not in log.getvalue()


def test_a_failing_cell_fails_loudly_and_leaves_no_copy(runnable, tmp_path, capsys):
    good, bad = runnable / "01_good.ipynb", runnable / "02_bad.ipynb"
    good.write_bytes(_notebook("a = 1"))
    bad.write_bytes(_notebook("a = 1", "b = 2\nassert a == b, 'a differs from b'", "c = 3"))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "02_bad.ipynb").write_text("{}")  # an old copy must not survive
    log = io.StringIO()
    assert ex.run([good, bad], jobs=2, timeout=120, cache=cache, out=log) == 1
    err = capsys.readouterr().err
    assert "02_bad.ipynb failed in cell 2 (code cell 2" in err, err
    assert "AssertionError" in err and "a differs from b" in err and "assert a == b" in err
    assert "\x1b[" not in err  # no terminal colours in the report
    assert "FAILED      02_bad.ipynb" in log.getvalue()
    assert not (cache / "02_bad.ipynb").exists() and not (cache / "02_bad.key.json").exists()
    assert (cache / "01_good.ipynb").is_file()  # the others still run and are kept


def test_a_notebook_over_its_time_fails(runnable, tmp_path, capsys):
    slow = runnable / "03_slow.ipynb"
    slow.write_bytes(_notebook("import time", "time.sleep(2)", "time.sleep(60)"))
    assert ex.run([slow], jobs=1, timeout=4, cache=tmp_path / "cache", out=io.StringIO()) == 1
    assert "03_slow.ipynb ran out of time" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "03_slow.ipynb").exists()


@pytest.mark.parametrize("asynchronous", [True, False])
def test_kernels_talk_over_sockets_of_their_own(asynchronous):
    """Over TCP two kernels started at once (two xdist workers) can be handed
    the same port, and one dies with "Address already in use"; the managers
    that the executor and the nbval plugin use give each kernel Unix sockets
    in a folder of its own, outside the notebook's folder."""
    import os

    from jupyter_client.manager import AsyncKernelManager, KernelManager

    cls = ex.kernel_manager_class(asynchronous)
    assert issubclass(cls, AsyncKernelManager if asynchronous else KernelManager)
    first, second = cls(kernel_name="python3"), cls(kernel_name="python3")
    assert first.transport == second.transport == "ipc"
    assert os.path.dirname(first.ip) != os.path.dirname(second.ip)
    assert os.path.isdir(os.path.dirname(first.ip)) and os.path.isabs(first.ip)
    assert first._make_url("shell").startswith("ipc://" + first.ip)


def test_the_nbval_plugin_starts_its_kernels_over_unix_sockets(monkeypatch):
    import nbval.kernel

    import tools.nbval_executed as plugin

    monkeypatch.setattr(nbval.kernel, "KernelManager", nbval.kernel.KernelManager)
    plugin.pytest_sessionstart(None)
    assert nbval.kernel.KernelManager(kernel_name="python3").transport == "ipc"


# --------------------------------------------------------------------------- #
# The hook: pages from executed copies, downloads from the stored notebooks


@pytest.fixture
def hook_site(tmp_path, monkeypatch, package):
    """docs/notebooks -> ../notebooks with one chapter, as mkdocs-jupyter's
    File; the hook's cache and environment pointed at temporary ones."""
    pytest.importorskip("mkdocs_jupyter", reason="the docs extra is not installed")
    from mkdocs.structure.files import File, Files
    from mkdocs_jupyter.plugin import NotebookFile

    import mkdocs_hooks

    (tmp_path / "docs").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "docs" / "notebooks").symlink_to(Path("..") / "notebooks")
    (tmp_path / "docs" / "index.md").write_text("# Home\n")
    nb = tmp_path / "notebooks" / "01_a.ipynb"
    nb.write_bytes(_notebook("x = 1"))
    docs, site = str(tmp_path / "docs"), str(tmp_path / "site")
    chapter = NotebookFile(File("notebooks/01_a.ipynb", docs, site, True), use_directory_urls=True, site_dir=site)
    files = Files([File("index.md", docs, site, True), chapter])
    cache = tmp_path / "cache"
    monkeypatch.setattr(ex, "CACHE", cache)
    environment = ex.environment_inputs(package, VERSIONS, {})
    monkeypatch.setattr(ex, "environment_inputs", lambda *a, **k: environment)
    monkeypatch.setattr(mkdocs_hooks.mathjax_files, "site_files", lambda: {})
    monkeypatch.setattr(mkdocs_hooks, "PAGE_CACHE", tmp_path / "pages")
    mkdocs_hooks.on_pre_build({})
    return mkdocs_hooks, files, chapter, nb, cache, environment


class _Page:
    """What the hook uses of an mkdocs Page; render() notes the file it converts."""

    def __init__(self, file):
        self.file, self.read, self.content = file, [], None

    def render(self, config, files):
        self.read.append(self.file.abs_src_path)
        self.content = f"<p>{Path(self.file.abs_src_path).read_text()}</p>"


def _config(**jupyter):
    from types import SimpleNamespace

    settings = {"ignore_h1_titles": True, "execute": False, "theme": "light", **jupyter}
    return SimpleNamespace(plugins={"mkdocs-jupyter": SimpleNamespace(config=settings)})


def test_the_hook_renders_the_executed_copy_and_keeps_the_stored_notebook(hook_site):
    hooks, files, chapter, nb, cache, environment = hook_site
    copy = ex.store(nb, nb.read_bytes(), b'"executed 1"\n', 0.1, environment, cache)
    assert hooks.on_files(files, {}) is files
    stored = chapter.abs_src_path
    page = _Page(chapter)
    hooks.on_pre_page(page, _config(), files)
    page.render({}, files)
    assert page.read == [str(copy)]  # mkdocs-jupyter converted the executed copy
    assert page.content == '<p>"executed 1"\n</p>'
    # ... and everything after the conversion (links, the download copy that
    # mkdocs-jupyter writes in on_post_page) sees the stored notebook
    assert chapter.abs_src_path == stored
    assert Path(stored).resolve() == nb.resolve()
    hooks.on_post_build({})

    # the next build reuses the HTML of the same executed copy ...
    hooks.on_pre_build({})
    again = _Page(chapter)
    hooks.on_pre_page(again, _config(), files)
    again.render({}, files)
    assert again.read == [] and again.content == page.content
    hooks.on_post_build({})
    # ... but not with other settings, nor of a new copy (and forgets the old HTML)
    hooks.on_pre_build({})
    themed = _Page(chapter)
    hooks.on_pre_page(themed, _config(theme="dark"), files)
    themed.render({}, files)
    assert themed.read == [str(copy)]
    ex.store(nb, nb.read_bytes(), b'"executed 2"\n', 0.1, environment, cache)
    new = _Page(chapter)
    hooks.on_pre_page(new, _config(), files)
    new.render({}, files)
    assert new.read == [str(copy)] and new.content == '<p>"executed 2"\n</p>'
    hooks.on_post_build({})
    assert len(list((cache.parent / "pages").glob("*.html"))) == 2


def test_the_hook_refuses_a_missing_or_stale_copy(hook_site):
    from mkdocs.exceptions import PluginError

    hooks, files, chapter, nb, cache, environment = hook_site
    with pytest.raises(PluginError, match=r"01_a\.ipynb: not executed yet(.|\n)*execute_notebooks\.py"):
        hooks.on_files(files, {})
    ex.store(nb, nb.read_bytes(), b"{}\n", 0.1, environment, cache)
    hooks.on_files(files, {})
    page = _Page(chapter)
    hooks.on_pre_page(page, _config(), files)
    nb.write_bytes(_notebook("x = 2"))  # edited after the check, before the page is rendered
    with pytest.raises(PluginError, match=r"01_a\.ipynb \(changed since it was executed: the notebook\)"):
        page.render({}, files)
    assert page.read == []
    with pytest.raises(PluginError, match="01_a.ipynb"):
        hooks.on_files(files, {})


def test_the_hook_fails_a_build_during_which_the_package_changed(hook_site, monkeypatch, package):
    from mkdocs.exceptions import PluginError

    hooks, environment = hook_site[0], hook_site[-1]
    (package / "optimizers" / "sgd.py").write_text("")
    changed = ENVIRONMENT_INPUTS(package, VERSIONS, {})
    monkeypatch.setattr(ex, "environment_inputs", lambda *a, **k: changed)
    assert changed != environment
    with pytest.raises(PluginError, match=r"package file mxopt/optimizers/sgd\.py changed during the build"):
        hooks.on_post_build({})


def test_the_hook_requires_execute_and_cache_off():
    pytest.importorskip("mkdocs_jupyter", reason="the docs extra is not installed")
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))
    jupyter = next(p["mkdocs-jupyter"] for p in config["plugins"] if isinstance(p, dict) and "mkdocs-jupyter" in p)
    assert jupyter["execute"] is False and jupyter["cache"] is False and jupyter["include_source"] is True


# --------------------------------------------------------------------------- #
# nbval's runs become the executed copies (tools/nbval_executed.py)


def _nbval(folder: Path, cache: Path, backend: str, environment, *notebooks: str):
    import os
    import subprocess

    (folder / "environment.json").write_text(json.dumps(environment))
    (folder / "conftest.py").write_text(
        "import json, sys\nfrom pathlib import Path\n"
        f"sys.path.insert(0, {str(ROOT / 'tools')!r})\n"
        f"import execute_notebooks\nexecute_notebooks.CACHE = Path({str(cache)!r})\n"
        "FIXED = json.loads((Path(__file__).parent / 'environment.json').read_text())\n"
        "execute_notebooks.environment_inputs = lambda *a, **k: FIXED\n"
    )
    (folder / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "MPLBACKEND": backend, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "-p", "tools.nbval_executed", "--rootdir", str(folder), "-c", str(folder / "pytest.ini"), *notebooks],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )


def test_nbval_keeps_what_it_executed_as_the_executed_copy(runnable, tmp_path, fixed):
    pytest.importorskip("nbval")
    good, bad = runnable / "01_good.ipynb", runnable / "02_bad.ipynb"
    good.write_bytes(_notebook(
        "print('hello')",
        "1 + 1;",  # a trailing ";" hides the result, as in Jupyter
        "import matplotlib.pyplot as plt\nplt.plot([0, 1])",
    ))
    bad.write_bytes(_notebook("x = 1", "assert x == 2"))
    cache = tmp_path / "cache"
    proc = _nbval(runnable, cache, ex.BACKEND, fixed, good.name, bad.name)
    assert proc.returncode == 1 and "1 failed, 4 passed" in proc.stdout, proc.stdout + proc.stderr
    assert not (cache / "02_bad.ipynb").exists()  # a failed cell: no copy
    # the copy of the passing notebook is current under the executor's own key
    copy = ex.executed_copy(good, fixed, cache)
    cells = [c for c in json.loads(copy.read_text())["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in cells] == [1, 2, 3]
    assert [o["output_type"] for o in cells[0]["outputs"]] == ["stream"]
    assert cells[1]["outputs"] == []
    kinds = [o["output_type"] for o in cells[2]["outputs"]]
    assert kinds == ["execute_result", "display_data"] and "image/png" in cells[2]["outputs"][1]["data"]
    assert good.read_bytes().count(b'"outputs": []') == 3  # the stored notebook is untouched

    # figures drawn nowhere (MPLBACKEND=Agg) are no copy for the site
    other = tmp_path / "cache2"
    proc = _nbval(runnable, other, "Agg", fixed, good.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (other / "01_good.ipynb").exists()
