"""The one error root of fpga_gan: what a user can fix vs what is our bug.

Why a root of our own (after finn-plus's ``FINNUserError`` / ``FINNInternalError``): the command
line has ONE handler. A :class:`UserError` describes a problem the user can fix (a file that is
missing, a layer no RTL streams, a design that does not fit): it is printed as one clear message,
without a traceback, and the command exits with :data:`USER_ERROR_EXIT`. An
:class:`InternalError` is a bug of fpga_gan: it keeps its traceback and asks to be reported.
Every error class of the package derives from one of the two, so a caller can also catch
:class:`FpgaGanError` alone.

This module imports nothing: ``fpga_gan.runtime`` (numpy only, on a PYNQ image) derives its errors
from it, and the board package ships it beside the runtime.
"""

from __future__ import annotations

__all__ = ["FpgaGanError", "UserError", "InternalError", "USER_ERROR_EXIT", "INTERNAL_ERROR_EXIT", "REPORT_URL"]

#: Exit status of a command that stopped on a :class:`UserError` (click's own usage errors use 2 too).
USER_ERROR_EXIT = 2
#: Exit status of a command that stopped on an :class:`InternalError` or any unexpected exception.
INTERNAL_ERROR_EXIT = 3
#: Where internal errors should be reported.
REPORT_URL = "the fpga_gan issue tracker"


class FpgaGanError(Exception):
    """Base of every error fpga_gan raises on purpose."""


class UserError(FpgaGanError):
    """A problem the user can fix; the message names it (file, node, option) and what to change."""


class InternalError(FpgaGanError):
    """A bug of fpga_gan (an invariant of our own broke): shown with its traceback, please report it."""
