"""``python -m airflow_provider_kie.emulator``: run the Kie emulator in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal

from aiohttp import web

from airflow_provider_kie.connection import connection_json
from airflow_provider_kie.emulator.app import build_app
from airflow_provider_kie.emulator.state import EmulatorConfig, EmulatorState


def main(argv: list[str] | None = None) -> None:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_kie.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--waiting-seconds", type=float, default=defaults.waiting_seconds)
    parser.add_argument("--queuing-seconds", type=float, default=defaults.queuing_seconds)
    parser.add_argument("--generating-seconds", type=float, default=defaults.generating_seconds)
    parser.add_argument("--null-seconds", type=float, default=defaults.null_seconds)
    parser.add_argument("--rate-limits", action="store_true", help="enforce Kie's per-key rate limits")
    parser.add_argument(
        "--api-key", action="append", dest="api_keys", help="accept only this key (repeatable)"
    )
    parser.add_argument("--callback-secret", help="sign callbacks with this webhook HMAC key")
    parser.add_argument("--config", help="JSON object of further EmulatorConfig fields")
    args = parser.parse_args(argv)

    config = EmulatorConfig()
    fields = {f.name for f in dataclasses.fields(EmulatorConfig)}
    config.update({k: v for k, v in vars(args).items() if k in fields and v is not None})
    if args.config:
        config.update(json.loads(args.config))
    asyncio.run(_serve(config, args.host, args.port))


async def _serve(config: EmulatorConfig, host: str, port: int) -> None:
    state = EmulatorState(config)
    state.public_url = f"http://{host}:{port}"
    runner = web.AppRunner(build_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"Kie emulator listening on {state.public_url}", flush=True)
    conn = connection_json("emulator-key", state.public_url, upload_base_url=state.public_url)
    print(f"AIRFLOW_CONN_KIE_DEFAULT={conn}", flush=True)
    print(f"KIE_DOCS_URL={state.public_url}  # Kie's doc pages, served here too", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    main()
