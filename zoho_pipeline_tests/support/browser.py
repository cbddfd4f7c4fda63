"""A real browser for the UI tests: Playwright's Python package driving Debian's `chromium`.

Playwright's own browser download is not used (it fetches a build from outside the package registries): the test
setup installs Debian's `chromium` with apt-get when it is missing and the tests run as root. Where no browser can
be had, the tests skip saying why, except under CI=true, where that is a failure.

Screenshots go to test-artifacts/browser/ at the repository's root (git-ignored), one PNG per step, so a person
can look at what the test saw.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CANDIDATES = ("chromium", "chromium-browser")
APT_TIMEOUT_S = 900


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _apt(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)


def install_chromium() -> tuple[str | None, str]:
    """(path, "") of a chromium, installing Debian's package when missing; (None, why) when none can be had."""
    path = find_chromium()
    if path:
        return path, ""
    if not shutil.which("apt-get"):
        return None, "no chromium on PATH and no apt-get to install Debian's chromium"
    if os.geteuid() != 0:
        return None, "no chromium on PATH, and installing Debian's chromium needs root (apt-get install chromium)"
    done = _apt("install", "-y", "--no-install-recommends", "chromium")
    if done.returncode != 0:  # an old or missing package list: update once, then try again
        _apt("update")
        done = _apt("install", "-y", "--no-install-recommends", "chromium")
    path = find_chromium()
    if not path:
        return None, f"apt-get install chromium failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}"
    return path, ""


def chromium_or_skip() -> str:
    """The chromium to drive; a skip with the reason, or under CI=true a failure."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the playwright package is not installed (make install installs the dev extra)"
    else:
        path, problem = install_chromium()
        if path:
            return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"a browser is required under CI=true: {problem}")
    pytest.skip(f"no browser for the UI test: {problem}")


class Shots:
    """Numbered screenshots of one test: test-artifacts/browser/<test>/<NN>-<step>.png."""

    def __init__(self, page, test_name: str):
        self.page = page
        self.folder = ARTIFACTS / test_name
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def __call__(self, step: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path
