"""A pytest plugin: the notebooks that nbval runs become the site's executed copies.

    MPLBACKEND=module://matplotlib_inline.backend_inline \\
        python -m pytest --nbval-lax -p tools.nbval_executed notebooks

``make test-notebooks`` runs every notebook under nbval, which executes each
code cell in a fresh ``python3`` kernel from the notebook's folder and fails
the cell that raises.  That is the same execution tools/execute_notebooks.py
performs for the site, so this plugin keeps it: it records the kernel's
messages for each cell as nbval reads them, turns them into the cell's
outputs with nbclient's own message handling (streams, displays, clear_output,
display updates, execution counts), and when every code cell of a notebook
has passed, stores the executed notebook under the key of the notebook's bytes
and of the package and versions as they were when the session started
(:func:`execute_notebooks.store`).  ``make site`` then finds the copies current
and executes nothing again.

The plugin also has nbval start its kernels over Unix sockets, not TCP
ports (see :func:`execute_notebooks.kernel_manager_class`).

Nothing is stored for a notebook with a failed or skipped cell, for one that
changed on disk after nbval read it, or when the kernel's matplotlib backend
is not the inline one (with ``MPLBACKEND=Agg`` the figures would be missing
from the pages).
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import sys

import pytest

_TOOLS = str(Path(__file__).resolve().parent)
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)
import execute_notebooks  # noqa: E402  (tools/execute_notebooks.py)

_ENVIRONMENT: dict = {}


def pytest_sessionstart(session):
    _ENVIRONMENT["inputs"] = execute_notebooks.environment_inputs()
    # nbval starts its kernels over TCP, where two xdist workers starting one
    # each can be handed the same port; give it the Unix-socket manager that
    # execute_notebooks uses (nbval.kernel looks the class up at each start)
    import nbval.kernel

    nbval.kernel.KernelManager = execute_notebooks.kernel_manager_class(asynchronous=False)


def _is_nbval_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell" and hasattr(item.parent, "get_kernel_message")


class _Notebook:
    """What is recorded of one notebook while nbval runs its cells."""

    def __init__(self, collector):
        import nbformat
        from nbclient import NotebookClient

        self.path = Path(str(collector.fspath)).resolve()
        self.source = self.path.read_bytes()
        self.nb = nbformat.reads(self.source.decode("utf-8"), as_version=4)
        # nbval parsed the file when it collected it; a different file now
        # means that the cells it runs are not these
        self.usable = self.nb == collector.nb and os.environ.get("MPLBACKEND") == execute_notebooks.BACKEND
        self.code = [i for i, cell in enumerate(self.nb.cells) if cell.cell_type == "code"]
        self.last = f"{collector.nodeid}::Cell {len(self.code) - 1}"  # nbval's name of the last one
        self.passed: set[int] = set()
        self.start = time.monotonic()
        self.client = NotebookClient(self.nb, record_timing=False)
        self.client.reset_execution_trackers()
        from ipykernel.ipkernel import IPythonKernel  # the kernel nbval started runs this Python

        self.nb.metadata["language_info"] = dict(IPythonKernel.language_info)


_NOTEBOOKS: dict[int, _Notebook] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if not _is_nbval_cell(item):
        yield
        return
    collector = item.parent
    record = _NOTEBOOKS.get(id(collector))
    if record is None:
        record = _NOTEBOOKS[id(collector)] = _Notebook(collector)
    kernel = collector.kernel
    sent: list[str] = []
    messages: list[dict] = []
    get_kernel_message = collector.get_kernel_message

    def execute_and_note(cell_input, allow_stdin=None):
        # as Jupyter and nbclient execute a cell: with history, so that
        # execution counts advance and a trailing ";" hides a result (nbval
        # sends store_history=False, which does neither)
        msg_id = kernel.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin)
        sent.append(msg_id)
        return msg_id

    def read_and_note(*args, **kwargs):
        msg = get_kernel_message(*args, **kwargs)
        messages.append(msg)
        return msg

    kernel.execute_cell_input = execute_and_note
    collector.get_kernel_message = read_and_note
    try:
        outcome = yield
    finally:
        del kernel.execute_cell_input, collector.get_kernel_message  # back to the methods
    if outcome.excinfo is not None or len(sent) != 1 or not record.usable:
        return
    index = record.code[item.cell_num]
    cell = record.nb.cells[index]
    if cell.source != item.cell.source:
        record.usable = False
        return
    try:
        _outputs(record, cell, index, sent[0], messages)
    except Exception as err:  # a bug here must not fail the notebook's test
        record.usable = False
        warnings.warn(f"{record.path.name}: its executed copy is not kept ({type(err).__name__}: {err}); "
                      "make site will execute it again")
    else:
        record.passed.add(item.cell_num)


def _outputs(record: _Notebook, cell, index: int, msg_id: str, messages: list[dict]) -> None:
    """Give `cell` the outputs of the kernel's `messages` that answer `msg_id`,
    as nbclient would (it executes a notebook the same way)."""
    from nbclient.exceptions import CellExecutionComplete

    cell.outputs = []
    record.client.clear_before_next_output = False  # as nbclient does before each cell
    for msg in messages:
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        try:
            record.client.process_message(msg, cell, index)
        except CellExecutionComplete:
            break


def pytest_runtest_logreport(report):
    """After a notebook's last cell: store the executed copy if every cell passed."""
    if report.when != "teardown":
        return
    for key, record in list(_NOTEBOOKS.items()):
        if report.nodeid == record.last:
            del _NOTEBOOKS[key]
            if record.usable and len(record.passed) == len(record.code):
                import nbformat

                data = nbformat.writes(record.nb).encode("utf-8") + b"\n"
                execute_notebooks.store(
                    record.path, record.source, data, time.monotonic() - record.start, _ENVIRONMENT["inputs"]
                )
