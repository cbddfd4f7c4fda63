"""The `zoho-pipeline` console script tunes its process's garbage collection (issue 12's fixed cost): young
collections far apart while Dagster's objects are made, and no collection walking them all at exit."""

from __future__ import annotations

import gc
import tomllib
from pathlib import Path

import pytest

from zoho_pipeline.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_script_is_the_console_entry():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["zoho-pipeline"] == "zoho_pipeline.cli.main:console"


def test_the_console_exits_with_the_commands_code_and_its_objects_frozen(monkeypatch):
    seen = {}

    def command() -> int:
        seen["threshold"] = gc.get_threshold()[0]
        return 3

    monkeypatch.setattr(cli, "main", command)
    before = gc.get_threshold()
    try:
        with pytest.raises(SystemExit) as exited:
            cli.console()
        assert exited.value.code == 3
        assert seen["threshold"] == cli.GC_THRESHOLDS[0]  # set before the command ran
        assert gc.get_freeze_count() > 0  # the exit's collections skip them
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
