"""What importing the provider's operators (as a DAG file does) adds on top of ``airflow.sdk``.

    .venv/bin/python benchmarks/import_time.py [--runs 9]

Each run is a fresh interpreter that imports ``airflow.sdk`` first, then the operators, sensor and
hooks a DAG file names, and reports the second step's wall time and how many catalog entries it read.
"cached": with the bytecode caches as installed packages have them; "uncached": every module compiled
anew (a fresh ``PYTHONPYCACHEPREFIX``). Prints the median of each as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

PROBE = """
import json, pathlib, time
import airflow.sdk
read = []
original = pathlib.Path.read_text
def counted(self, *args, **kwargs):
    if self.suffix == ".json" and self.parent.name == "catalog":
        read.append(self.name)
    return original(self, *args, **kwargs)
pathlib.Path.read_text = counted
start = time.perf_counter()
import airflow_provider_kie.operators.kie, airflow_provider_kie.operators.seedream
import airflow_provider_kie.operators.batch, airflow_provider_kie.sensors.kie, airflow_provider_kie.hooks.kie
print(json.dumps({"ms": (time.perf_counter() - start) * 1000, "entries_read": len(read)}))
"""


def run(env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
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
    from airflow_provider_kie import models

    results["catalog_models"] = len(getattr(models, "names", lambda: models.CATALOG)())
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
