"""The provider's Airflow 3 plugin, on the API server under ``/kie``: Kie's callbacks received
(:mod:`.receiver`) and a DAG run's results shown in a "Kie results" tab (:mod:`.gallery`); and the
Connections list's Test button made to work for a ``kie`` connection (:mod:`.connection_test`)."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_kie.callbacks import PLUGIN_PREFIX
from airflow_provider_kie.plugins.connection_test import KieConnectionTestPort


def create_app() -> Any:
    from fastapi import FastAPI

    from airflow_provider_kie.plugins import gallery, receiver

    app = FastAPI(title="Kie (airflow-provider-kie)", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(receiver.router())
    app.include_router(gallery.router())
    return app


class _LazyApp:
    """The plugin's FastAPI app, built on its first request: every Airflow process loads plugins, only
    the API server serves them, and FastAPI is too heavy to import in each task process."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.app is None:
            self.app = create_app()
        await self.app(scope, receive, send)


class KiePlugin(AirflowPlugin):
    name = "kie"
    fastapi_apps = [{"app": _LazyApp(), "url_prefix": PLUGIN_PREFIX, "name": "Kie callbacks and results"}]
    fastapi_root_middlewares = [
        {"middleware": KieConnectionTestPort, "args": [], "kwargs": {}, "name": "Kie connection Test button"}
    ]
    external_views = [
        {
            "name": "Kie results",
            # Relative, so the UI resolves it under Airflow's base URL; the UI fills in the run.
            "href": PLUGIN_PREFIX.lstrip("/") + "/gallery?dag_id={DAG_ID}&run_id={RUN_ID}",
            "destination": "dag_run",
            "url_route": "kie-results",
        }
    ]
