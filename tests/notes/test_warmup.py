"""The note engine's warm-up leaves its dictionaries out of later garbage collections."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.no_database

# In a fresh interpreter: the test process has frozen its heap already (or will).
PROBE = """
import gc
from clinscribe.notes.warmup import warm_up
warm_up()
frozen = gc.get_freeze_count()
warm_up()
assert gc.get_freeze_count() == frozen, "frozen twice"
print(frozen, len(gc.get_objects()))  # what a full collection still walks
"""


def test_warm_up_freezes_the_loaded_dictionaries_out_of_full_collections() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    frozen, tracked = (int(n) for n in done.stdout.split())
    # The drug names, negation triggers and ICD-10-CM codes: about a million objects, which
    # a full collection would walk with the GIL held (about 0.4 s on the CI machine).
    assert frozen > 500_000
    assert tracked < frozen // 10
