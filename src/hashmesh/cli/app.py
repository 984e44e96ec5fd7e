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
from typing import Annotated, Any

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


_APP_SETTINGS: dict[str, Any] = {
    "name": "hashmesh",
    "help": "hashmesh: content-addressed storage (BLAKE3 ids, dedup, compression), one node or many.",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}


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
    """hashmesh: content-addressed storage (BLAKE3 ids, dedup, compression), one node or many."""
    ctx.obj = {"repo": repo}


class _OnlyCommand:
    """Stands in for the app during ``register(app)``, keeping one command by name."""

    def __init__(self, app: typer.Typer, name: str) -> None:
        self._app = app
        self._name = name
        self.found = False

    def command(self, name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        def decorator(fn: Any) -> Any:
            if (name or fn.__name__.lower().replace("_", "-")) == self._name:
                self.found = True
                self._app.command(name, *args, **kwargs)(fn)
            return fn

        return decorator

    def add_typer(self, sub: typer.Typer, *args: Any, name: str | None = None, **kw: Any) -> None:
        resolved = name or getattr(getattr(sub, "info", None), "name", None)
        if isinstance(resolved, str) and resolved != self._name:
            return  # another group: skip it
        self.found = self.found or resolved == self._name
        self._app.add_typer(sub, *args, name=name, **kw)

    def __getattr__(self, attr: str) -> Any:  # anything else passes straight through
        return getattr(self._app, attr)


def build_app(only: str | None = None) -> typer.Typer:
    """The typer app with every command, or with just the command named ``only``.

    typer inspects every command's signature when it builds the click command
    tree; building just the one being run saves that work on every start.
    Returns the full app when ``only`` names no command.
    """
    new = typer.Typer(**_APP_SETTINGS)
    new.callback()(_global)
    target: Any = new if only is None else _OnlyCommand(new, only)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(target)
    if only is not None and not target.found:
        return build_app()
    return new


def _invoked_command(argv: list[str]) -> str | None:
    """The command name in ``argv`` after the global options; None for --help and such."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--repo":
            i += 2
        elif arg.startswith("--repo="):
            i += 1
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


app = build_app()


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
        args = sys.argv[1:] if argv is None else list(argv)
        command = typer.main.get_command(build_app(_invoked_command(args)))
        fastparams.install(command)
        command(args=args, prog_name="hashmesh")
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
