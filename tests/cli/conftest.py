"""Fixtures for CLI tests: a repository made by ``hashmesh init`` and a runner bound to it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tests.cli.cli_helpers import Runner, ok, run_cli


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An initialised repository in tmp_path (through ``hashmesh init``)."""
    repo = tmp_path / "repo"
    ok(run_cli(["init"], home=repo))
    return repo


@pytest.fixture
def hm(home: Path, tmp_path: Path) -> Runner:
    """``hm("put", path, ...)`` runs the CLI on the ``home`` repository, cwd = tmp_path."""

    def runner(*args: str | os.PathLike[str], text: bool = True) -> subprocess.CompletedProcess:
        return run_cli(args, home=home, cwd=tmp_path, text=text)

    return runner
