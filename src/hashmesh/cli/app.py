"""The typer application, its global options, and the one error table.

Every error a command can raise ends here: :data:`EXIT_CODES` maps the
:mod:`hashmesh.errors` tree (and ``OSError`` / Ctrl-C) to an exit code, and
:func:`main` prints exactly one line ``error: ...`` on stderr - never a
traceback. typer's own usage errors keep their usual form and exit code 2.

Command modules register themselves through ``register(app)``; a new group of
commands is a new module listed in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
import typer.main

from hashmesh.cli import fastparams
from hashmesh.cli.common import Interrupted
from hashmesh.errors import (
    CapacityError,
    HashmeshError,
    IntegrityError,
    NetworkError,
    NotFoundError,
    StorageError,
    UsageError,
)

#: The one table: first matching class wins, so subclasses come first.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (Interrupted, 130),
    (KeyboardInterrupt, 130),
    (UsageError, 2),  # InvalidIdError, InvalidArgumentError, NotInitialisedError
    (NotFoundError, 3),
    (CapacityError, 4),
    (IntegrityError, 5),
    (StorageError, 6),
    (NetworkError, 7),
    (HashmeshError, 1),  # PeerError and anything new
    (OSError, 6),  # local files: permission denied, not a directory, no such file, disk full
    (Exception, 1),  # a bug: still one line (HASHMESH_DEBUG=1 re-raises)
)

COMMAND_MODULES = (
    "hashmesh.cli.store_cmds",
    "hashmesh.cli.demo",
    "hashmesh.cli.sim_cmd",
    "hashmesh.cli.node_cmds",
)

DEBUG_ENV = "HASHMESH_DEBUG"


def exit_code(exc: BaseException) -> int:
    """The exit code :data:`EXIT_CODES` assigns to ``exc``."""
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1


def error_message(exc: BaseException) -> str:
    """One line describing ``exc`` for a user."""
    if isinstance(exc, Interrupted | KeyboardInterrupt):
        text = "interrupted"
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename is not None:
            text += f": {exc.filename}"
        if exc.filename2 is not None:
            text += f" -> {exc.filename2}"
    elif isinstance(exc, HashmeshError):
        text = str(exc) or type(exc).__name__
        block = getattr(exc, "block_id", None)
        if isinstance(exc, IntegrityError) and block and block not in text:
            text += f" (block {block})"
    else:
        text = f"internal error: {type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _version(value: bool) -> None:
    if value:
        from hashmesh import __version__

        sys.stdout.write(f"hashmesh {__version__}\n")
        raise typer.Exit()


app = typer.Typer(
    name="hashmesh",
    help="hashmesh: content-addressed storage with BLAKE3 ids, dedup and compression.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    ctx: typer.Context,
    repo: Annotated[
        Path | None,
        typer.Option(
            "--repo",
            help="Repository directory (default: $HASHMESH_HOME, else ~/.hashmesh).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """hashmesh: content-addressed storage with BLAKE3 ids, dedup and compression."""
    ctx.obj = {"repo": repo}


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def _quiet_shutdown() -> None:
    """After an error is reported, keep interpreter shutdown from adding noise.

    An interrupted event loop can leave never-awaited coroutines and objects
    whose finalisers complain; the user already has the one line that matters.
    """
    warnings.simplefilter("ignore")
    sys.unraisablehook = lambda _unraisable: None
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app; map every error to one line and an exit code."""
    try:
        command = typer.main.get_command(app)
        fastparams.install(command)
        command(args=argv, prog_name="hashmesh")
    except SystemExit as exc:
        if exc.code == 130:  # typer turns a Ctrl-C outside our runner into exit 130
            _quiet_shutdown()
            sys.stderr.write("error: interrupted\n")
        raise
    except BaseException as exc:
        if os.environ.get(DEBUG_ENV) and not isinstance(exc, KeyboardInterrupt):
            raise
        _quiet_shutdown()
        sys.stderr.write(f"error: {error_message(exc)}\n")
        sys.stderr.flush()
        raise SystemExit(exit_code(exc)) from None
