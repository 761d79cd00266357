"""Property tests: whatever Kie (or a proxy) answers, the contract layer gives a KieTask or a KieError."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_kie import api
from airflow_provider_kie.api import KieTask
from airflow_provider_kie.exceptions import KieError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
record_fields = st.fixed_dictionaries(
    {},
    optional={
        "taskId": st.text(max_size=10) | json_values,
        "state": st.sampled_from(["waiting", "queuing", "generating", "success", "fail", "??"]) | json_values,
        "resultJson": json_values | json_values.map(json.dumps) | st.text(max_size=20),
        "param": json_values | json_values.map(json.dumps),
        "failCode": json_values,
        "failMsg": json_values,
        "creditsConsumed": json_values,
        "createTime": json_values | st.integers(min_value=-(2**70), max_value=2**70),
        "completeTime": json_values,
    },
)
replies = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.builds(
        lambda code, data: {"code": code, "msg": "m", "data": data},
        st.integers(0, 999) | json_values,
        json_values,
    )
    | record_fields.map(lambda r: json.dumps({"code": 200, "msg": "success", "data": r}))
)


def read_task(reply, status):
    try:
        return api.parse_task(api.parse_reply(reply, http_status=status, operation=api.GET_TASK))
    except KieError as error:
        return error


@settings(max_examples=400, deadline=None)
@given(reply=replies, status=st.sampled_from([200, 201, 204, 400, 404, 429, 500, 502, 503]))
def test_any_reply_becomes_a_task_or_a_kie_error(reply, status):
    assert isinstance(read_task(reply, status), (KieTask, KieError))


@settings(max_examples=300, deadline=None)
@given(record=record_fields)
def test_any_record_becomes_a_task_or_a_kie_error(record):
    result = read_task({"code": 200, "msg": "success", "data": record}, 200)
    assert isinstance(result, (KieTask, KieError))
    if isinstance(result, KieTask):
        json.dumps(result.to_dict())  # always JSON-safe for XCom


@settings(max_examples=200, deadline=None)
@given(data=json_values)
def test_other_replies(data):
    for parse in (api.parse_task_id, api.parse_credits, api.parse_download_url, api.parse_upload):
        with contextlib.suppress(KieError):
            parse(data)
