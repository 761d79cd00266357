"""A probe for the triggerer's processes, loaded by putting this folder on their PYTHONPATH:
``benchmarks/batch.py ... --env PYTHONPATH=$PWD/benchmarks/probe``. It times every event-loop callback
and, once one has run 30 ms, samples the loop thread's stack every 10 ms; a callback over 80 ms is
written with its most frequent stacks to ``$KIE_PROBE_DIR/slow-<pid>.log`` (default /tmp), and every
full garbage collection over 30 ms to ``gc-<pid>.log`` (its time and the objects it walked). It costs CPU
of its own: figures of a probed run are not comparable with unprobed ones."""

import os
import sys
import threading
import time
import traceback

if "triggerer" in " ".join(sys.argv):
    import asyncio.events
    import gc

    _state: dict = {"handle": None, "started": 0.0, "samples": []}
    _run = asyncio.events.Handle._run
    _dir = os.environ.get("KIE_PROBE_DIR", "/tmp")

    def _timed_run(self):  # type: ignore[no-untyped-def]
        _state.update(handle=self, started=time.perf_counter(), samples=[])
        try:
            return _run(self)
        finally:
            took = time.perf_counter() - _state["started"]
            _state["handle"] = None
            if took > 0.08:
                counts: dict = {}
                for stack in _state["samples"]:
                    counts[stack] = counts.get(stack, 0) + 1
                # The pid at the time of writing: the trigger runner is forked from the supervisor.
                with open(os.path.join(_dir, f"slow-{os.getpid()}.log"), "a") as log:
                    log.write(f"\n=== {time.strftime('%H:%M:%S')} {took:.3f}s {self._callback!r:.200}\n")
                    for stack, n in sorted(counts.items(), key=lambda item: -item[1])[:4]:
                        log.write(f"--- x{n}\n{stack}\n")

    def _sample() -> None:
        while True:
            time.sleep(0.01)
            if _state["handle"] is not None and time.perf_counter() - _state["started"] > 0.03:
                frame = sys._current_frames().get(_state["main"])
                if frame is not None:
                    _state["samples"].append("".join(traceback.format_stack(frame)[-14:]))

    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]

    def _start_sampler() -> None:
        _state["main"] = threading.main_thread().ident
        threading.Thread(target=_sample, daemon=True, name="kie-probe").start()

    _start_sampler()
    os.register_at_fork(after_in_child=_start_sampler)  # the trigger runner is forked: no threads come along

    _gc_started = [0.0]

    def _time_full_collections(phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            _gc_started[0] = time.perf_counter()
            return
        took = time.perf_counter() - _gc_started[0]
        if took > 0.03:
            with open(os.path.join(_dir, f"gc-{os.getpid()}.log"), "a") as log:
                walked = sum(gc.get_count()) + len(gc.get_objects(2))
                log.write(
                    f"{time.strftime('%H:%M:%S')} {took:.3f}s gen2 objects={walked} frozen={gc.get_freeze_count()}\n"
                )

    gc.callbacks.append(_time_full_collections)
