"""What the emulator knows: its settings, the tasks it holds, the requests it saw, the faults to inject."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from airflow_provider_kie import media
from airflow_provider_kie.emulator.faults import BadSetting, Fault


@dataclass
class EmulatorConfig:
    """Knobs of the emulator; every field can be changed while it runs (``/_emulator/config``)."""

    api_keys: list[str] | None = None  # None: any non-empty key is accepted
    waiting_seconds: float = 0.3
    queuing_seconds: float = 0.0
    generating_seconds: float = 0.7
    generating_spread_seconds: float = 0.0  # each task generates up to this much longer (uniform)
    # Generation time per kind of result, as a multiple of generating_seconds: videos take longest.
    generating_factors: dict[str, float] = field(
        default_factory=lambda: {"image": 1.0, "video": 3.0, "audio": 1.5}
    )
    null_seconds: float = 0.2  # recordInfo answers "recordInfo is null" this long after creation
    credits: Decimal = Decimal(1000)
    credits_per_task: Decimal = Decimal(6)
    fail_marker: str = "[fail]"  # prompts containing it end in state "fail"
    fail_rate: float = 0.0
    validation_error_code: int = 422  # Kie has also been seen answering 500
    message_key: str = "msg"  # or "message", as in older docs
    latency_seconds: float = 0.0
    rate_limits: bool = False  # Kie's own: 20 createTask per 10 s, 10 recordInfo per s, per key
    create_limit: tuple[int, float] = (20, 10.0)
    record_limit: tuple[int, float] = (10, 1.0)
    rate_limit_http_status: int = 200  # 429 to answer throttled requests with HTTP 429 too
    callback_secret: str | None = None  # Kie's webhookHmacKey: sign callbacks when set
    callback_attempts: int = 3
    callback_drop_rate: float = 0.0  # this share of tasks' callbacks is never sent (a lost callback)
    result_bytes: int = 0  # pad each result image to this size (a 4K result is tens of MB); 0: as made

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in names:
                raise BadSetting(name, f"is not an emulator setting; settings: {', '.join(sorted(names))}")
            current = getattr(self, name)
            if isinstance(current, Decimal):
                value = Decimal(str(value))
            elif isinstance(current, tuple):
                value = tuple(value)
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass
class RequestRecord:
    endpoint: str
    method: str
    path: str
    query: dict[str, str]
    body: Any
    key_sha256: str | None  # which key was used, without keeping the key
    user_agent: str = ""
    status: int = 0
    code: int | None = None
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class EmulatedTask:
    task_id: str
    model: str
    body: dict[str, Any]
    key_sha256: str
    created: float
    waiting: float
    queuing: float
    generating: float
    fails: bool
    credits: Decimal
    kind: str = "image"  # what the model makes: image, video or audio
    result_shape: str = "resultUrls"  # the catalog's word for it: resultUrls, or resultObject (data)
    forced_state: str | None = None  # set through /_emulator/tasks/{id}

    @property
    def done_at(self) -> float:
        return self.created + self.waiting + self.queuing + self.generating

    def state(self, now: float) -> str:
        if self.forced_state:
            return self.forced_state
        age = now - self.created
        if age < self.waiting:
            return "waiting"
        if age < self.waiting + self.queuing:
            return "queuing"
        if now < self.done_at:
            return "generating"
        return "fail" if self.fails else "success"


class EmulatorState:
    """Everything the emulator knows; guarded by a lock because tests read it from other threads."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.lock = threading.RLock()
        self.public_url = ""
        self.in_flight = 0  # Kie requests being handled now
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.tasks: dict[str, EmulatedTask] = {}
            self.requests: list[RequestRecord] = []
            self.faults: list[Fault] = []
            self.files: dict[str, tuple[bytes, str]] = {}
            self.callbacks: list[dict[str, Any]] = []
            self.windows: dict[tuple[str, str], deque[float]] = defaultdict(deque)
            self.spent = Decimal(0)
            # Kie's pages as a test changed them: model -> its facts (catalog format), or None: gone.
            self.pages: dict[str, dict[str, Any] | None] = {}
            self.page_requests: list[RequestRecord] = []  # requests to the docs host

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, endpoint: str, kinds: frozenset[str] | None = None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                # "*" means Kie's API; a result download ("file") or a docs page ("docs") fails only
                # when asked for by name.
                matches = fault.endpoint == endpoint or (
                    fault.endpoint == "*" and endpoint not in ("file", "docs")
                )
                if not matches or (kinds is not None and fault.kind not in kinds):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def balance(self) -> Decimal:
        return Decimal(str(self.config.credits)) - self.spent

    def count(self, endpoint: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.endpoint == endpoint)

    def throttled(self, key: str, kind: str) -> bool:
        limit, window = self.config.create_limit if kind == "createTask" else self.config.record_limit
        now = time.monotonic()
        with self.lock:
            stamps = self.windows[(key, kind)]
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            if len(stamps) >= limit:
                return True
            stamps.append(now)
            return False


def task_record(state: EmulatorState, task: EmulatedTask, now: float) -> dict[str, Any]:
    """recordInfo ``data`` for ``task`` at time ``now``, shaped as Kie sends it."""
    current = task.state(now)
    terminal = current in ("success", "fail")
    url = f"{state.public_url}/files/results/{task.task_id}.{media.made_as(task.kind)[1]}"
    finished = min(now, task.done_at)
    record: dict[str, Any] = {
        "taskId": task.task_id,
        "model": task.model,
        "state": current,
        "param": json.dumps(task.body),
        "resultJson": json.dumps(result_json(state, task, url)) if current == "success" else "",
        "failCode": "500" if current == "fail" else "",
        "failMsg": "internal error, please try again later" if current == "fail" else "",
        "costTime": round(task.done_at - task.created) if terminal else 0,
        "createTime": int(task.created * 1000),
        "updateTime": int(finished * 1000),
        "progress": 100 if terminal else 0,
    }
    if terminal:
        record["completeTime"] = int(task.done_at * 1000)
        record["creditsConsumed"] = float(task.credits) if current == "success" else 0
    return record


def result_json(state: EmulatorState, task: EmulatedTask, url: str) -> dict[str, Any]:
    """What a successful task made, shaped as Kie's resultJson for its model."""
    if task.result_shape.startswith("resultObject"):
        return {"resultObject": {"text": f"An emulated transcript of task {task.task_id}."}}
    result: dict[str, Any] = {"resultUrls": [url]}
    if (task.body.get("input") or {}).get("return_last_frame") is True:
        for key, frame in (("firstFrameUrl", "first"), ("lastFrameUrl", "last")):
            result[key] = f"{state.public_url}/files/results/{task.task_id}-{frame}.png"
    return result
