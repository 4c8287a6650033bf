#!/usr/bin/env python3
"""Serve the built guide (site/) over HTTP on 127.0.0.1 only.

    python tools/serve.py [--dir site] [--port 8000]

A plain static server: build first with `make site` (or `make run`, which
does both).  `--port 0` picks a free port; the URL is printed either way.
The browser test (tests/test_site.py) uses `start()` to serve on an
ephemeral port from a background thread.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class _Handler(http.server.SimpleHTTPRequestHandler):
    # Serve notebooks as downloads of JSON rather than unknown binary data.
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".ipynb": "application/x-ipynb+json",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".woff": "font/woff",
        ".woff2": "font/woff2",
        ".json": "application/json",
    }

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        if self.server.verbose:
            super().log_message(format, *args)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    verbose = True


def make_server(directory: Path, port: int = 0, verbose: bool = True) -> _Server:
    handler = functools.partial(_Handler, directory=str(directory))
    server = _Server(("127.0.0.1", port), handler)
    server.verbose = verbose
    return server


def start(directory: Path, port: int = 0) -> tuple[_Server, str]:
    """Serve `directory` from a daemon thread; return the server and its base URL."""
    server = make_server(directory, port, verbose=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "site", help="folder to serve")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free one)")
    args = parser.parse_args(argv)
    if not (args.dir / "index.html").is_file():
        print(f"serve: no {args.dir}/index.html; build the site first (make site)", file=sys.stderr)
        return 1
    try:
        server = make_server(args.dir, args.port)
    except OSError as err:
        print(f"serve: cannot listen on 127.0.0.1:{args.port}: {err}", file=sys.stderr)
        return 1
    print(f"Serving {args.dir} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
