"""The plain coercion that keeps pydantic off the start-up path agrees with typer's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from hashmesh.cli import app, fastparams


def _typer_coerce(param, value):  # type: ignore[no-untyped-def]
    from typer._coercion import build_runtime_param

    return build_runtime_param(param.type_descriptor).coerce(value, param=param, ctx=None)


def test_plain_coercion_matches_typer() -> None:
    command = typer.main.get_command(app)
    assert fastparams.install(command) > 10
    samples = {
        str: ["", "x", "héllo", "--dash"],
        Path: ["a.txt", "/tmp", "./no/such/dir"],
        bool: [True, False],
        int: ["1", "50"],
    }
    checked = 0
    for sub in [command, *command.commands.values()]:
        for param in sub.params:
            plain = param._runtime_param
            if not isinstance(plain, fastparams.PlainCoercion):
                continue
            multi = param.multiple or param.nargs == -1
            for value in samples[plain.kind]:
                if plain.kind is int and not plain._plain_int(value):
                    continue
                arg = (value, value) if multi else value
                assert plain.coerce(arg, param=param, ctx=None) == _typer_coerce(param, arg)
                checked += 1
            assert plain.coerce(None, param=param, ctx=None) == (() if multi else None)
    assert checked > 30


def test_out_of_bounds_int_keeps_typers_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hashmesh", "--repo", str(tmp_path), "ls", "--limit", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "--limit" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["put", "-q", "x"], ["get", "bafy", "-o", "o"], ["--version"]])
def test_hot_commands_do_not_import_pydantic(tmp_path: Path, args: list[str]) -> None:
    code = (
        "import sys\n"
        "from hashmesh.cli import main\n"
        f"sys.argv = ['hashmesh', '--repo', {str(tmp_path)!r}, *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('pydantic' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stdout + proc.stderr


def test_build_app_keeps_just_the_invoked_command() -> None:
    from hashmesh.cli.app import _invoked_command, build_app

    full = set(typer.main.get_command(build_app()).commands)
    assert {"put", "get", "ls", "demo", "rm", "pin"} <= full
    for name in full:
        assert set(typer.main.get_command(build_app(name)).commands) == {name}
    assert set(typer.main.get_command(build_app("no-such")).commands) == full
    assert _invoked_command(["--repo", "r", "put", "x"]) == "put"
    assert _invoked_command(["--repo=r", "ls"]) == "ls"
    assert _invoked_command(["--help"]) is None
    assert _invoked_command([]) is None
