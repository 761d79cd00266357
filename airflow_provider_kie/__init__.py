"""Apache Airflow provider for Kie.ai's generation jobs API."""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

_INTEGRATION = "Kie.ai"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

    def modules(*names: str) -> list[dict[str, Any]]:
        return [{"integration-name": _INTEGRATION, "python-modules": list(names)}]

    return {
        "package-name": "airflow-provider-kie",
        "name": "Kie.ai",
        "description": "Image and video generation jobs on `Kie.ai <https://kie.ai>`__ (Seedream 4.5 and more).",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.kie.ai",
                "tags": ["service", "ai"],
            }
        ],
        "operators": modules(
            "airflow_provider_kie.operators.kie",
            "airflow_provider_kie.operators.seedream",
            "airflow_provider_kie.operators.market",
            "airflow_provider_kie.operators.batch",
        ),
        "sensors": modules("airflow_provider_kie.sensors.kie"),
        "hooks": modules("airflow_provider_kie.hooks.kie"),
        "triggers": modules(
            "airflow_provider_kie.triggers.jobs",
            "airflow_provider_kie.triggers.start",
            "airflow_provider_kie.triggers.kie",
        ),
        "extra-links": ["airflow_provider_kie.links.KieResultLink"],
        "connection-types": [
            {
                "connection-type": "kie",
                "hook-class-name": "airflow_provider_kie.hooks.kie.KieHook",
                "hook-name": "Kie.ai",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"password": "API key", "host": "Base URL"},
                    "placeholders": {
                        "password": "API key from https://kie.ai/api-key",
                        "host": "https://api.kie.ai (set only for a proxy or the local emulator)",
                    },
                },
                "conn-fields": {
                    "upload_base_url": {
                        "label": "Upload base URL",
                        "description": "Base URL of Kie's file upload API.",
                        "schema": {"type": ["string", "null"], "default": "https://kieai.redpandaai.co"},
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Timeout of each HTTP request to Kie.",
                        "schema": {"type": ["number", "null"], "default": 30},
                    },
                    "callback_base_url": {
                        "label": "Callback base URL",
                        "description": "Public URL of this Airflow's API server: Kie then tells waiting "
                        "tasks when they end (the /kie plugin), and polling becomes a slow safety net.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "docs_url": {
                        "label": "Docs URL",
                        "description": "Where Kie's doc pages are read when the provider's catalog "
                        "refuses an input (the current page decides). Default: https://docs.kie.ai.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "webhook_secret": {
                        "label": "Webhook HMAC key",
                        "description": "Kie's webhook HMAC key (kie.ai settings): only callbacks Kie "
                        "signed are accepted.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                },
            }
        ],
        "config": {
            "kie": {
                "description": "Settings of the Kie.ai provider.",
                "options": {
                    "triggerer_freeze_heap": {
                        "description": "Freeze the triggerer's heap (gc.freeze) when it loads its first "
                        "Kie trigger, so full garbage collections walk only newer objects and do not hold "
                        "its event loop for tenths of a second.",
                        "version_added": "0.2.0",
                        "type": "boolean",
                        "example": "False",
                        "default": "True",
                    },
                    "callback_safety_net_interval": {
                        "description": "Seconds between the polls of a task that waits for Kie's "
                        "callback (a callback may be lost), at least: with many tasks waiting, a "
                        "triggerer spreads them further, to 2 recordInfo calls a second in all.",
                        "version_added": "0.2.0",
                        "type": "float",
                        "example": "60",
                        "default": "60",
                    },
                },
            }
        },
    }
