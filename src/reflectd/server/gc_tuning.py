"""The cyclic garbage collector, tuned for a long-running server.

With CPython's default thresholds (a young collection every 700 allocations) a busy server
spends about a fifth of its CPU collecting: every push, turn and poke allocates a few dozen
short-lived objects (messages, pending mutations, pokes, futures), and the collector also
rescans everything that lives long (connections, rooms, the app's code). Almost none of it
is cyclic garbage: reference counting frees it.

So ``tune_gc`` moves what exists once the server is set up out of the collector's sight
(``gc.freeze``: it is never collected, as it would never be) and collects the young
generation every ``YOUNG_THRESHOLD`` allocations instead of 700. Cyclic garbage still goes,
only in bigger, rarer batches; the memory of an idle connection grew by about 3 % (one run
each, docs/performance.md).
"""

from __future__ import annotations

import gc

#: allocations (minus deallocations) between two collections of the young generation
YOUNG_THRESHOLD = 50_000
#: young collections between two collections of the middle generation, and middle ones
#: between two of the oldest (which CPython further skips while it would be cheap to wait)
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 10


def tune_gc() -> None:
    """Freeze what the process holds now, and collect rarely from here on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
