"""The provider's Airflow 3 plugin: Kie's callbacks received on the API server under ``/kie``."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_kie.callbacks import RECEIVER_PREFIX


class _LazyApp:
    """The receiver's FastAPI app, built on its first request: every Airflow process loads plugins, only
    the API server serves them, and FastAPI is too heavy to import in each task process."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.app is None:
            from airflow_provider_kie.plugins.receiver import create_app

            self.app = create_app()
        await self.app(scope, receive, send)


class KiePlugin(AirflowPlugin):
    name = "kie"
    fastapi_apps = [{"app": _LazyApp(), "url_prefix": RECEIVER_PREFIX, "name": "Kie callbacks"}]
