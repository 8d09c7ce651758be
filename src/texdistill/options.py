"""The pieces every config is made of: a field with its help text, a check with the fix in its message, and the one
check of option names. A leaf: it imports nothing of texdistill but the errors."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from dataclasses import field
from typing import Any

from texdistill.errors import ConfigError


def option(default: Any, help: str, choices: tuple | None = None, positional: bool = False) -> Any:
    """A config field with its help text (and optional choices) for the generated CLI flag or positional argument."""
    return field(default=default, metadata={"help": help, "choices": choices, "positional": positional})


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def refuse_unknown(keys: Iterable[str], known: Collection[str], where: str) -> None:
    """The one check of option names (config files, presets, the Python API, sweep specs): one line naming each
    unknown key and the nearest valid one."""
    unknown = [k for k in keys if k not in known]
    if unknown:
        named = []
        for key in unknown:
            nearest = difflib.get_close_matches(key, sorted(known), n=1)
            named.append(f"'{key}'" + (f" (did you mean '{nearest[0]}'?)" if nearest else ""))
        raise ConfigError(f"{where}: unknown option{'s' if len(named) > 1 else ''} {', '.join(named)}")


def _names(value: str | None) -> list[str] | None:
    """A comma-separated option as a list of names (None stays None)."""
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]
