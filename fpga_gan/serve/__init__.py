"""``fpga-gan serve``: the fitting room and the design studio as a web page.

A small ASGI application (Starlette, served by uvicorn) over the same
:class:`fpga_gan.runtime.Accelerator` the CLI uses, so the page on a PYNQ board shows what its
fabric computes. Its imports stay light (numpy, Pillow, Starlette; no torch, no FINN) so it runs
on a board image's Python with ``--artifacts``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Iterator

from .app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app", "free_port", "running_server", "serve"]


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the app with uvicorn until Ctrl-C."""
    import uvicorn

    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (for tests and the load benchmark)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(app, host: str = "127.0.0.1", timeout: float = 300.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread until the block ends; yields its base URL once it
    accepts requests (the app's start-up, which opens the accelerators, has run)."""
    import uvicorn

    port = free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="fpga-gan-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped during start-up (its log says why)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start within {timeout:.0f} s")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
