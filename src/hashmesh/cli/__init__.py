"""The ``hashmesh`` command line: a thin typer shell over :class:`hashmesh.Store`.

``app`` is the typer application; ``main`` is the console entry point, which
maps every error to one line on stderr and an exit code (see
:mod:`hashmesh.cli.app`).
"""

from hashmesh.cli.app import app, main

__all__ = ["app", "main"]
