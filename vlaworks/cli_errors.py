"""How the command line reports errors: one or two lines for a user's mistake, a traceback for a bug.

An *expected* error is one of :data:`USER_ERRORS` raised by vlaworks code itself (a missing
dataset, a bad option value, an unknown recipe): its message already says what is wrong
and how to fix it, so the CLI prints ``error: <message>`` on stderr and exits with status
2, like a usage error. Anything else (or any error under ``--debug`` / ``VLAWORKS_DEBUG=1``)
keeps its full traceback, because a traceback is what a bug report needs.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click
import typer
from typer.core import TyperGroup

import vlaworks

USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # includes DatasetError, CheckpointError, RunFolderError
    KeyError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    ConnectionError,  # no policy server at a ws:// address
    ImportError,  # an optional simulator (LIBERO) not installed in this Python
)
EXIT_USER_ERROR = 2
DEBUG_ENV = "VLAWORKS_DEBUG"
_PACKAGE_DIR = str(Path(vlaworks.__file__).resolve().parent)


def raised_by_vlaworks(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback lies in the vlaworks package
    (our own ``raise`` with a user-facing message, not an error deep in a library)."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(_PACKAGE_DIR)


def user_message(err: BaseException) -> str:
    """The message of ``err`` as a user reads it (a KeyError's str() adds quotes)."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err) or type(err).__name__


def debug_requested(ctx: click.Context) -> bool:
    """``--debug`` on the command line or ``VLAWORKS_DEBUG`` set to a true value."""
    flag = bool(ctx.find_root().params.get("debug"))
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record arrives (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # type: ignore[no-untyped-def]
        pass


def show_warnings() -> None:
    """Print vlaworks' logged warnings (a cleaned-up partial write, a checkpoint fallback) on
    stderr as ``warning: ...`` lines; idempotent."""
    logger = logging.getLogger("vlaworks")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        handler.setLevel(logging.WARNING)
        logger.addHandler(handler)


class ErrorReportingGroup(TyperGroup):
    """The root command group: turns expected errors of any subcommand into exit status 2."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except USER_ERRORS as err:
            if debug_requested(ctx) or not raised_by_vlaworks(err):
                raise
            typer.echo(f"error: {user_message(err)}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
