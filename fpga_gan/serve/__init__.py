"""``fpga-gan serve``: the fitting room and the design studio as a web page.

A small ASGI application (Starlette, served by uvicorn) over the same
:class:`fpga_gan.runtime.Accelerator` the CLI uses, so the page on a PYNQ board shows what its
fabric computes. Its imports stay light (numpy, Pillow, Starlette; no torch, no FINN) so it runs
on a board image's Python with ``--artifacts``.
"""

from .app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app", "serve"]


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the app with uvicorn until Ctrl-C."""
    import uvicorn

    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level)
