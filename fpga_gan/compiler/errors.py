"""Errors of the compile pipeline.

Why a class of its own: the CLI catches :class:`CompileError` and prints its message alone, with
no traceback, because it describes a problem the user can fix (an unknown board name, a design
that does not fit). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["CompileError"]


class CompileError(Exception):
    """A compile failure whose message tells the user what to change."""
