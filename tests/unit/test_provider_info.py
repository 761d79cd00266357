"""Provider metadata: valid against Airflow's own schema and reachable through the entry point."""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_provider_kie import get_provider_info


def _schema() -> dict:
    # Ships inside apache-airflow-core (Airflow 3) or apache-airflow (2.x), next to airflow/__init__.py.
    return json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())


def test_provider_info_validates_against_airflow_schema():
    jsonschema.validate(get_provider_info(), _schema())


def test_entry_point_is_registered():
    found = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_kie")
    ]
    assert len(found) == 1
    assert found[0].load() is get_provider_info


def test_every_declared_module_and_class_imports():
    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(kind, []):
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for name in [c["hook-class-name"] for c in info["connection-types"]] + info["extra-links"]:
        module, _, attr = name.rpartition(".")
        assert getattr(importlib.import_module(module), attr)


def test_the_plugin_is_an_entry_point_airflow_always_loads():
    (found,) = [
        ep for ep in entry_points(group="airflow.plugins") if ep.value.startswith("airflow_provider_kie")
    ]
    plugin = found.load()
    assert plugin.name == "kie"
    assert [app["url_prefix"] for app in plugin.fastapi_apps] == ["/kie"]


def test_connection_form_relabels_password_as_api_key():
    (conn,) = get_provider_info()["connection-types"]
    assert conn["connection-type"] == "kie"
    assert conn["ui-field-behaviour"]["relabeling"]["password"] == "API key"
    assert {"login", "schema", "port"} <= set(conn["ui-field-behaviour"]["hidden-fields"])
    assert set(conn["conn-fields"]) == {
        "upload_base_url",
        "timeout",
        "callback_base_url",
        "webhook_secret",
        "docs_url",
    }
    assert conn["conn-fields"]["webhook_secret"]["schema"]["format"] == "password"  # a masked field


def test_every_module_imports_first_in_a_fresh_interpreter():
    """A triggerer imports a trigger's module before anything else of the provider: an import cycle
    that a test process (which imported the operators first) never sees fails every such task."""
    import subprocess
    import sys

    import airflow_provider_kie

    root = Path(airflow_provider_kie.__file__).parent
    modules = sorted(
        "airflow_provider_kie." + ".".join(path.relative_to(root).with_suffix("").parts)
        for path in root.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    )
    # Airflow is imported once; the provider afresh before each module.
    script = """
import importlib, json, sys
import airflow
failed = {}
for module in sys.argv[1:]:
    for name in [n for n in sys.modules if n.split(".")[0] == "airflow_provider_kie"]:
        del sys.modules[name]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:  # a module for another Airflow (the plugin's FastAPI apps)
        if (error.name or "").split(".")[0] == "airflow_provider_kie":
            failed[module] = repr(error)
    except Exception as error:
        failed[module] = repr(error)
print(json.dumps(failed))
"""
    result = subprocess.run(
        [sys.executable, "-c", script, *modules], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}


def test_names_0_1_0_had_are_still_found_where_0_1_0_put_them():
    kie = importlib.import_module("airflow_provider_kie.triggers.kie")
    jobs = importlib.import_module("airflow_provider_kie.triggers.jobs")
    assert issubclass(kie.KieTaskTrigger, jobs.KieJobsTrigger)
    hooks = importlib.import_module("airflow_provider_kie.hooks.kie")
    assert hooks.KieConnectionSettings.__module__ == "airflow_provider_kie.hooks.settings"
    with pytest.warns(DeprecationWarning, match="hooks.settings"):
        assert hooks.USER_AGENT.startswith("airflow-provider-kie/")
