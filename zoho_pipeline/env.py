"""Reading settings from the environment: the one place any layer reads it (the import-graph test keeps it so).

Every reader takes an optional `env` mapping (tests pass a dict); None means the process environment. Strict: a
value that is not what the variable takes is a ConfigError naming the variable, the value and what it accepts
(never a silent default: `ALERT_SMTP_STARTTLS=ture` once turned TLS off). Booleans are true/false, 1/0, yes/no in
any case; numbers are finite and not negative. A `ZOHO_*` / `ALERT_*` variable no code reads is warned about,
with the likely name (`unknown_variables`).
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, fields
from pathlib import Path

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
BOOLEANS = "true/false, 1/0 or yes/no (any case)"
PREFIXES = ("ZOHO_", "ALERT_")
TEST_VARIABLES = ("ZOHO_SOAK", "ZOHO_SOAK_CUSTOMERS", "ZOHO_FAULT_CUSTOMERS", "ZOHO_TEST_PG_URL")  # the test suite's


class ConfigError(ValueError):
    """One or more variables whose values cannot be read: each named, with its value and what it accepts."""

    def __init__(self, problems: Iterable[tuple[str, str]]):
        self.problems = list(problems)  # (variable, message)
        super().__init__("; ".join(message for _, message in self.problems))

    @property
    def variables(self) -> list[str]:
        return [name for name, _ in self.problems]


def _refuse(name: str, value: str, accepted: str) -> ConfigError:
    return ConfigError([(name, f"{name}={value!r} is not valid: {accepted}")])


def environ(env: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """`env`, or the process environment."""
    return os.environ if env is None else env


def text(name: str, default: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The variable's value, or `default` when it is unset or empty."""
    value = environ(env).get(name)
    return value if value not in (None, "") else default


def number(name: str, default, kind=float, env: Mapping[str, str] | None = None, minimum: float = 0):
    """`kind(env[name])`, or `default` when the variable is unset or empty; a malformed, non-finite or too small
    value is a ConfigError naming the variable."""
    value = environ(env).get(name)
    if value in (None, "") or not value.strip():
        return default
    what = "a whole number" if kind is int else "a number"
    try:
        parsed = kind(value.strip())
    except ValueError:
        raise _refuse(name, value, f"{what} >= {minimum:g}") from None
    if not math.isfinite(parsed) or parsed < minimum:
        raise _refuse(name, value, f"{what} >= {minimum:g}")
    return parsed


def flag(value: str | None, default: bool, name: str = "the variable") -> bool:
    """An environment value read as a boolean: true/false, 1/0, yes/no in any case; unset or empty is `default`;
    anything else (a typo such as `ture`, or `on`) is a ConfigError naming `name`."""
    if value is None or not value.strip():
        return default
    word = value.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise _refuse(name, value, BOOLEANS)


def boolean(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    return flag(environ(env).get(name), default, name)


def choice(name: str, default: str, choices: Iterable[str], env: Mapping[str, str] | None = None) -> str:
    """One of `choices` (compared in lower case), or `default` when unset; anything else is a ConfigError."""
    choices = tuple(choices)
    value = environ(env).get(name)
    if value is None or not value.strip():
        return default
    if value.strip().lower() not in choices:
        raise _refuse(name, value, "one of " + ", ".join(choices))
    return value.strip().lower()


def collect(**readers) -> dict:
    """Run each reader (a zero-argument callable) and return their values by key; every reader that fails is
    reported in one ConfigError, so a bad variable never hides the state of the others."""
    values, problems = {}, []
    for key, read in readers.items():
        try:
            values[key] = read()
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return values


@functools.lru_cache(maxsize=1)
def known_variables() -> frozenset[str]:
    """Every `ZOHO_*` / `ALERT_*` name the package's code reads: the names written in its sources (current and
    deprecated ones alike). Read from the code itself so a variable added anywhere is known without a registry."""
    pattern = re.compile(r"[\"']((?:ZOHO|ALERT)_[A-Z0-9_]+)[\"']")
    names: set[str] = set()
    for path in Path(__file__).parent.rglob("*.py"):
        if "emulator" in path.parts:  # the other side of the wire reads no pipeline settings
            continue
        names.update(pattern.findall(path.read_text(encoding="utf-8", errors="replace")))
    return frozenset(names)


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each set `ZOHO_*` / `ALERT_*` variable no code reads, naming the likely intended one."""
    known = known_variables()
    out = []
    for name in sorted(environ(env)):
        if not name.startswith(PREFIXES) or name in known:
            continue
        guess = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        out.append(f"{name} is set but zoho-pipeline reads no such variable{hint}; it has no effect")
    return out


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


def dataclass_from_env(cls, env_vars: Mapping[str, str | tuple[str, tuple[str, ...]]], env=None):
    """`cls(...)` with each field named in `env_vars` read from its variable (or `(variable, old names)`), read as
    the field's default is typed: a bool as a flag, a number as a number, else text. Unset variables keep the
    dataclass's default (a field without one reads as ""), so every default is written once, in the dataclass."""
    env = environ(env)
    readers = {}
    for f in fields(cls):
        if f.name not in env_vars:
            continue
        name, old_names = env_vars[f.name] if isinstance(env_vars[f.name], tuple) else (env_vars[f.name], ())
        name = renamed(name, old_names, env)
        default = "" if f.default is MISSING else f.default
        if isinstance(default, bool):
            readers[f.name] = functools.partial(boolean, name, default, env)
        elif isinstance(default, int | float):
            readers[f.name] = functools.partial(number, name, default, type(default), env)
        elif "choices" in f.metadata:
            readers[f.name] = functools.partial(choice, name, default, f.metadata["choices"], env)
        else:
            readers[f.name] = functools.partial(text, name, default, env)
    return cls(**collect(**readers))
