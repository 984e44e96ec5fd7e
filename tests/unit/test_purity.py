"""The sans-I/O rule: pure modules never touch the world.

Nothing under dht/, content/, placement.py or repair.py may import asyncio,
socket, threading, time, os, sqlite3 (or friends), nor call the module-level
``random`` functions: time comes in as ``now``, randomness as an injected
``random.Random``.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "hashmesh"
FORBIDDEN = {
    "asyncio",
    "socket",
    "threading",
    "time",
    "os",
    "sqlite3",
    "subprocess",
    "selectors",
    "multiprocessing",
    "shutil",
    "pathlib",
    "tempfile",
    "signal",
    "uvloop",
}
RANDOM_FUNCS = {
    "random",
    "randint",
    "randrange",
    "choice",
    "choices",
    "shuffle",
    "sample",
    "getrandbits",
    "uniform",
    "seed",
    "randbytes",
}


def pure_files() -> list[Path]:
    files: list[Path] = []
    for sub in ("dht", "content"):
        files += sorted((SRC / sub).glob("**/*.py"))
    files += [p for p in (SRC / "placement.py", SRC / "repair.py") if p.exists()]
    return files


def violations(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in FORBIDDEN]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in FORBIDDEN:
                found.append(node.module)
            if node.module == "random":
                found += [f"random.{a.name}" for a in node.names if a.name in RANDOM_FUNCS]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "random"
            and node.func.attr in RANDOM_FUNCS
        ):
            found.append(f"random.{node.func.attr}()")
    return found


def test_checker_catches_violations() -> None:
    assert violations("import asyncio") == ["asyncio"]
    assert violations("from time import monotonic") == ["time"]
    assert violations("import random\nx = random.random()") == ["random.random()"]
    assert violations("import random\nr = random.Random(1)") == []


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_pure_module(path: Path) -> None:
    assert violations(path.read_text()) == []
