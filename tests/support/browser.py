"""Debian's Chromium for browser tests (Playwright drives it; it never downloads a browser)."""

from __future__ import annotations

import os
import shutil

import pytest


def chromium_path() -> str:
    """The chromium executable; in CI its absence is a failure (.ci/run installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run must install it")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return found
