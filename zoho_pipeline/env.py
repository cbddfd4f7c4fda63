"""Reading settings from the environment: the one place any layer reads it (the import-graph test keeps it so).

Every reader takes an optional `env` mapping (tests pass a dict); None means the process environment.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping


def environ(env: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """`env`, or the process environment."""
    return os.environ if env is None else env


def text(name: str, default: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The variable's value, or `default` when it is unset or empty."""
    value = environ(env).get(name)
    return value if value not in (None, "") else default


def number(name: str, default, kind=float, env: Mapping[str, str] | None = None):
    """`kind(env[name])`, or `default` when the variable is unset or empty; a malformed value is an error naming
    the variable."""
    value = environ(env).get(name)
    if value in (None, ""):
        return default
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a {kind.__name__}") from None


def flag(value: str | None, default: bool) -> bool:
    """An environment value read as a boolean: 1/true/yes/on (any case) are true; unset or empty is `default`."""
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def renamed(name: str, old_names: tuple[str, ...], env: Mapping[str, str] | None = None) -> str:
    """The name to read: `name` when set, else the first old name that is set (with a DeprecationWarning saying
    the new name; old names keep working for one release), else `name`."""
    env = environ(env)
    if env.get(name) not in (None, ""):
        return name
    for old in old_names:
        if env.get(old) not in (None, ""):
            warnings.warn(
                f"{old} is deprecated and will stop working in the next release: set {name} instead",
                DeprecationWarning,
                stacklevel=3,
            )
            return old
    return name
