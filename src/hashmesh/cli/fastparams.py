"""Plain coercion for ``str`` and ``Path`` parameters, so a command starts fast.

typer (0.2x) coerces every parameter value through a pydantic ``TypeAdapter``;
importing pydantic and building the adapters costs 50-100 ms per command, a
third of a small ``hashmesh put``. For a parameter annotated ``str``,
``Path``, ``bool`` or ``int`` (optional, or a list of them) with no path checks requested, click has
already produced strings (or a flag's bool) and the coercion is just ``v``,
``Path(v)`` or ``int(v)`` of a plain decimal inside the bounds.

:func:`install` gives such parameters that plain coercion and leaves every
other parameter (numbers with bounds, enums, ...) to typer. It relies on
typer's lazily built ``_runtime_param`` slot; on a typer without it nothing is
installed and typer behaves exactly as usual. Any value the plain path does
not expect (bytes, say) is handed back to typer's own coercion.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args, get_origin

import typer

_PLAIN_TYPES = (str, Path, bool, int)
_DEFAULT_PATH_FLAGS = {
    "exists": False,
    "file_okay": True,
    "dir_okay": True,
    "writable": False,
    "resolve_path": False,
    "allow_dash": False,
    "path_type": None,
    "parser": None,
}


def _plain_type(annotation: Any) -> tuple[type, bool] | None:
    """``(type, is_list)`` for a supported annotation, else None."""
    if annotation in _PLAIN_TYPES:
        return annotation, False
    if get_origin(annotation) is list:
        args = get_args(annotation)
        if len(args) == 1 and args[0] in _PLAIN_TYPES:
            return args[0], True
    return None


class PlainCoercion:
    """Stands in for typer's runtime parameter: ``coerce(value, param=, ctx=)``."""

    def __init__(self, kind: type, info: Any) -> None:
        self.kind = kind
        self.info = info

    def coerce(self, value: Any, *, param: Any, ctx: Any) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:
            return () if multi else None
        items = value if isinstance(value, list | tuple) else None
        expected = bool if self.kind is bool else str
        if (
            (multi and items is None)
            or not all(isinstance(v, expected) for v in (items if items is not None else (value,)))
            or (self.kind is int and (items is not None or not self._plain_int(value)))
        ):  # anything unusual, and every error message, stays typer's
            return self._typer(param).coerce(value, param=param, ctx=ctx)
        if items is not None:
            return [self._one(v, param, ctx) for v in items]
        return self._one(value, param, ctx)

    def _plain_int(self, value: str) -> bool:
        """A decimal integer inside the option's bounds (no clamping)."""
        if not value.isdigit() or getattr(self.info, "clamp", False):
            return False
        lo, hi = getattr(self.info, "min", None), getattr(self.info, "max", None)
        return (lo is None or int(value) >= lo) and (hi is None or int(value) <= hi)

    def _one(self, value: Any, param: Any, ctx: Any) -> Any:
        if self.kind is int:
            return int(value)
        if self.kind is not Path:
            return value
        if self.info.readable and os.path.exists(value) and not os.access(value, os.R_OK):
            raise typer.BadParameter(f"Path {value!r} is not readable.", ctx=ctx, param=param)
        return Path(value)

    @staticmethod
    def _typer(param: Any) -> Any:
        param._runtime_param = None  # let typer build its own, once
        runtime = param.get_runtime_param()
        return runtime


def _eligible(param: Any) -> tuple[type, bool] | None:
    if getattr(param, "_runtime_param", False) is not None or not hasattr(
        param, "get_runtime_param"
    ):
        return None
    desc = getattr(param, "type_descriptor", None)
    info = getattr(desc, "parameter_info", None)
    if desc is None or info is None or getattr(desc, "file_annotation", None) is not None:
        return None
    plain = _plain_type(desc.annotation)
    if plain is None:
        return None
    if plain[0] is Path and any(
        getattr(info, flag, default) != default for flag, default in _DEFAULT_PATH_FLAGS.items()
    ):
        return None
    if getattr(info, "parser", None) is not None:
        return None
    return plain


def install(command: Any) -> int:
    """Give eligible parameters of ``command`` (and its subcommands) plain coercion.

    Returns how many parameters were changed.
    """
    changed = sum(_install_one(param) for param in getattr(command, "params", ()))
    original = getattr(command, "get_help_option", None)
    if callable(original):
        # the --help option is made on first use, outside ``params``

        def get_help_option(ctx: Any) -> Any:
            option = original(ctx)
            if option is not None:
                _install_one(option)
            return option

        command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        changed += install(sub)
    return changed


def _install_one(param: Any) -> int:
    plain = _eligible(param)
    if plain is None:
        return 0
    param._runtime_param = PlainCoercion(plain[0], param.type_descriptor.parameter_info)
    return 1


__all__ = ["PlainCoercion", "install"]
