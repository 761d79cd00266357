"""Keep the triggerer's full garbage collections short.

A full collection walks every object the process tracks, and most of a trigger runner's are Airflow's
own (its modules, the serialized DAGs it loaded): on a 2-core machine one full collection held the
triggerer's event loop 0.2-0.4 s, so Airflow reported the loop blocked every few minutes while a
1,000-item batch ran, and at its start. ``gc.freeze()`` moves the objects alive now into a generation
collections no longer walk (Airflow's dag-processor and LocalExecutor do the same before forking), so
later full collections walk only what was made since. It is done once per triggerer process, when its
first Kie trigger starts; ``[kie] triggerer_freeze_heap = False`` turns it off.
"""

from __future__ import annotations

import gc
import sys

from airflow_provider_kie.compat import TRIGGER_RUNNER_MODULE

_frozen = False


def freeze_triggerer_heap() -> bool:
    """Freeze the heap of this process if it is a triggerer, once; True if this call froze it."""
    global _frozen
    if _frozen or TRIGGER_RUNNER_MODULE not in sys.modules or not _enabled():
        return False
    _frozen = True
    gc.freeze()
    return True


def _enabled() -> bool:
    from airflow.configuration import conf

    return conf.getboolean("kie", "triggerer_freeze_heap", fallback=True)
