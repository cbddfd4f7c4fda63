"""Reading settings from the environment: one way to read a number or a flag, for every layer."""

from __future__ import annotations

import os
from collections.abc import Mapping


def number(name: str, default, kind=float, env: Mapping[str, str] | None = None):
    """`kind(env[name])`, or `default` when the variable is unset or empty."""
    value = (os.environ if env is None else env).get(name)
    return kind(value) if value not in (None, "") else default


def flag(value: str | None, default: bool) -> bool:
    """An environment value read as a boolean: 1/true/yes/on (any case) are true; unset or empty is `default`."""
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")
