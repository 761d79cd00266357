"""Provider metadata: valid against Airflow's own schema and reachable through the entry point."""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema

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
    assert set(conn["conn-fields"]) == {"upload_base_url", "timeout", "callback_base_url", "webhook_secret"}
    assert conn["conn-fields"]["webhook_secret"]["schema"]["format"] == "password"  # a masked field
