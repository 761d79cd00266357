"""The model catalog's costs: what importing the provider's operators (as a DAG file does) adds on top
of ``airflow.sdk``, and how long validating one input takes.

    .venv/bin/python benchmarks/catalog.py [--runs 9] [--out benchmarks/results/catalog.json]

Import: each run is a fresh interpreter that imports ``airflow.sdk`` first, then every operator module
(typed ones included), the sensor and the hooks, and reports the second step's wall time and how many
catalog entries it read; then each operator module alone, as one DAG file imports it. "cached": with the bytecode caches as installed packages have them;
"uncached": every module compiled anew (a fresh ``PYTHONPYCACHEPREFIX``). Medians.
Validation: a minimal valid input of every catalog model (as the tests make them), validated 200
times each; the mean per input, and the slowest model's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROBE = """
import importlib, json, pathlib, sys, time
import airflow.sdk
read = []
original = pathlib.Path.read_text
def counted(self, *args, **kwargs):
    if self.suffix == ".json" and self.parent.name == "catalog":
        read.append(self.name)
    return original(self, *args, **kwargs)
pathlib.Path.read_text = counted
start = time.perf_counter()
missing = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError:  # a version before the typed Market operators, measured side by side
        missing.append(name)
ms = (time.perf_counter() - start) * 1000
print(json.dumps({"ms": None if missing == sys.argv[1:] else ms, "entries_read": len(read)}))
"""
EVERYTHING = [
    "airflow_provider_kie.operators.kie", "airflow_provider_kie.operators.seedream",
    "airflow_provider_kie.operators.market", "airflow_provider_kie.operators.batch",
    "airflow_provider_kie.sensors.kie", "airflow_provider_kie.hooks.kie",
]  # fmt: skip
# What one DAG file imports: one operator module (typical), measured alone.
ONE_MODULE = {
    "operators.seedream": ["airflow_provider_kie.operators.seedream"],
    "operators.market": ["airflow_provider_kie.operators.market"],
    "operators.batch": ["airflow_provider_kie.operators.batch"],
    "sensors.kie": ["airflow_provider_kie.sensors.kie"],
}


def run(env: dict[str, str], modules: list[str] = EVERYTHING) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_ms(samples: list[dict[str, Any]]) -> float | None:
    """The median time, or None where the modules do not exist in the version measured."""
    times = [s["ms"] for s in samples if s["ms"] is not None]
    return round(statistics.median(times), 1) if times else None


def validation_times(repeat: int = 200) -> dict[str, float]:
    """Microseconds per validation of a minimal valid input, over every catalog model."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from airflow_provider_kie import models
    from tests.catalog_cases import minimal_input

    per_model = {}
    for name in models.names():
        model = models.catalog_model(name)
        given = minimal_input(model)
        started = time.perf_counter()
        for _ in range(repeat):
            model.validate(given)
        per_model[name] = (time.perf_counter() - started) / repeat * 1e6
    slowest = max(per_model, key=per_model.__getitem__)
    return {
        "models": len(per_model),
        "mean_us_per_input": round(statistics.mean(per_model.values()), 1),
        "slowest_model": slowest,
        "slowest_us_per_input": round(per_model[slowest], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "catalog.json"))
    args = parser.parse_args()
    cached_env = {**os.environ}
    run(cached_env)  # writes any bytecode still missing
    results = {}
    for name in ("cached", "uncached"):
        samples = []
        for _ in range(args.runs):
            env = cached_env
            if name == "uncached":
                env = {**cached_env, "PYTHONPYCACHEPREFIX": tempfile.mkdtemp(prefix="kie-import-")}
            samples.append(run(env))
        results[name] = {
            "median_ms": round(statistics.median(s["ms"] for s in samples), 1),
            "catalog_entries_read": samples[0]["entries_read"],
        }
    results["one_module_cached_ms"] = {
        label: median_ms([run(cached_env, modules) for _ in range(args.runs)])
        for label, modules in ONE_MODULE.items()
    }
    from airflow_provider_kie import models

    results["catalog_models"] = len(getattr(models, "names", lambda: models.CATALOG)())
    if hasattr(models, "names"):
        results["validation"] = validation_times()
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
