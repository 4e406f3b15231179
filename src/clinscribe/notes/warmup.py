"""Loading the note engine's dictionaries before the first consultation needs them.

The drug-name dictionary, the negation triggers and the ICD-10-CM code set take a few
seconds to load, once per process. Loaded lazily inside a pipeline step, that would stall
the event loop (and every live progress stream) for those seconds; a worker loads them in a
thread while it starts instead.

Those dictionaries are about a million long-lived Python objects. Left to the garbage
collector, every full collection walks all of them: about 0.4 s with the GIL held, during
which no request is answered (it was the whole p99 of `bench/load_test.py`). Once they are
loaded, the process's heap is frozen (`gc.freeze`): moved out of the collector's
generations, so collections scan only what is allocated later. Done once per process.
"""

from __future__ import annotations

import gc
import threading

from clinscribe.notes.codes import suggest_codes
from clinscribe.notes.evidence import verify_note
from clinscribe.notes.extractive import build_note
from clinscribe.notes.model import Utterance
from clinscribe.notes.templates import SOAP

_SAMPLE = [
    Utterance("u1", 0.0, 1.0, "doctor", "Any fever?"),
    Utterance("u2", 1.0, 2.0, "patient", "No."),
    Utterance("u3", 2.0, 3.0, "doctor", "Your temperature is 37 degrees."),
    Utterance("u4", 3.0, 4.0, "doctor", "This looks like acute bronchitis."),
    Utterance("u5", 4.0, 5.0, "doctor", "Start amoxicillin 500 milligrams twice a day."),
]


_frozen = threading.Event()
_freeze_lock = threading.Lock()


def warm_up() -> None:
    draft = verify_note(build_note(_SAMPLE, SOAP), _SAMPLE)
    suggest_codes(draft, SOAP)
    freeze_long_lived_heap()


def freeze_long_lived_heap() -> None:
    """Collect once, then exempt every surviving object from later collections (once)."""
    with _freeze_lock:
        if _frozen.is_set():
            return
        gc.collect()  # what is garbage now is freed, not frozen for the process's life
        gc.freeze()
        _frozen.set()
