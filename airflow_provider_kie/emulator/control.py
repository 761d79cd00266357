"""``/_emulator/*``: the control API, so tests in other processes can read the request log and the tasks,
change settings, force a task's state, inject faults and reset the emulator."""

from __future__ import annotations

import time

from aiohttp import web

from airflow_provider_kie.emulator.faults import BadSetting, Fault
from airflow_provider_kie.emulator.routes import STATE_KEY
from airflow_provider_kie.emulator.state import EmulatorState, task_record


async def requests(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    with state.lock:
        return web.json_response([r.to_dict() for r in state.requests])


async def tasks(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    now = time.time()
    with state.lock:
        tasks = list(state.tasks.values())
    return web.json_response([task_record(state, t, now) for t in tasks])


async def task(request: web.Request) -> web.Response:
    """Force a task's state, e.g. ``{"state": "success"}`` to end it now."""
    state: EmulatorState = request.app[STATE_KEY]
    body = await request.json()
    with state.lock:
        task = state.tasks.get(request.match_info["task_id"])
        if task is None:
            raise web.HTTPNotFound()
        task.forced_state = body.get("state")
    return web.json_response(task_record(state, task, time.time()))


async def callbacks(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    with state.lock:
        return web.json_response(list(state.callbacks))


async def config(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if request.method == "POST":
        try:
            with state.lock:
                state.config.update(await request.json())
        except BadSetting as error:
            return web.json_response({"error": str(error)}, status=400)
    return web.json_response(state.config.to_dict())


async def faults(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    try:
        state.add_fault(Fault(**await request.json()))
    except (BadSetting, TypeError) as error:
        return web.json_response({"error": str(error)}, status=400)
    return web.json_response({"faults": len(state.faults)})


async def pages(request: web.Request) -> web.Response:
    """Kie's pages as a test wants them: POST ``{"model": id, "entry": facts}`` replaces or adds a model's
    page (facts in the catalog's format), ``"entry": null`` takes it off the pages; GET lists the
    requests the docs host saw."""
    state: EmulatorState = request.app[STATE_KEY]
    if request.method == "POST":
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return web.json_response({"error": "give {model, entry}"}, status=400)
        with state.lock:
            state.pages[body["model"]] = body.get("entry")
    with state.lock:
        return web.json_response([r.to_dict() for r in state.page_requests])


async def reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"reset": True})
