"""The contract layer against replies shaped like every variant in kie-api.md."""

from __future__ import annotations

import json
from decimal import Decimal

import pendulum
import pytest

from airflow_provider_kie import api
from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.exceptions import (
    KieAuthError,
    KieError,
    KieFeatureDisabledError,
    KieInsufficientCreditsError,
    KieMaintenanceError,
    KieNotFoundError,
    KieProtocolError,
    KieRateLimitError,
    KieServerError,
    KieSubKeyLimitError,
    KieValidationError,
)


def envelope(code, msg="success", data=None, key="msg"):
    return json.dumps({"code": code, key: msg, "data": data}).encode()


SUCCESS_RECORD = {
    "taskId": "e989621f54392584b05867f87b160672",
    "model": "seedream/4.5-edit",
    "state": "success",
    "param": json.dumps({"model": "seedream/4.5-edit", "input": {"prompt": "p"}}),
    "resultJson": json.dumps({"resultUrls": ["https://tempfile.aiquickdraw.com/a.png"]}),
    "failCode": "",
    "failMsg": "",
    "costTime": 51,
    "createTime": 1769704716000,
    "completeTime": 1769704767000,
    "updateTime": 1769704767000,
    "creditsConsumed": 6.5,
}


class TestEnvelope:
    def test_success_returns_data(self):
        assert api.parse_reply(envelope(200, data={"taskId": "t"}), http_status=200, operation="x") == {
            "taskId": "t"
        }

    def test_message_key_instead_of_msg(self):
        with pytest.raises(KieAuthError) as info:
            api.parse_reply(envelope(401, "Unauthorized", key="message"), http_status=200, operation="x")
        assert info.value.message == "Unauthorized"

    def test_code_as_string(self):
        assert (
            api.parse_reply(b'{"code": "200", "msg": "ok", "data": 5}', http_status=200, operation="x") == 5
        )

    def test_decoded_value_accepted(self):
        assert api.parse_reply({"code": 200, "msg": "ok", "data": 1}, http_status=200, operation="x") == 1

    @pytest.mark.parametrize(
        ("code", "msg", "operation", "cls", "retryable"),
        [
            (400, "taskId parameter is required", api.GET_TASK, KieValidationError, False),
            (401, "You do not have access permissions", api.CREATE_TASK, KieAuthError, False),
            (402, "Credits insufficient", api.CREATE_TASK, KieInsufficientCreditsError, False),
            (404, "Task not found", api.GET_TASK, KieNotFoundError, False),
            (408, "no result for 10 minutes", api.GET_TASK, KieServerError, True),
            (422, "recordInfo is null", api.GET_TASK, KieNotFoundError, False),
            (422, "Invalid image_urls", api.CREATE_TASK, KieValidationError, False),
            (429, "Rate limit exceeded", api.CREATE_TASK, KieRateLimitError, True),
            (433, "Sub-key usage exceeds limit", api.CREATE_TASK, KieSubKeyLimitError, False),
            (455, "maintenance", api.GET_TASK, KieMaintenanceError, True),
            (500, "Invalid parameter aspect_ratio", api.CREATE_TASK, KieValidationError, False),
            (500, "Server Error", api.GET_TASK, KieServerError, True),
            (501, "Generation failed", api.GET_TASK, KieError, False),
            (505, "Feature disabled", api.CREATE_TASK, KieFeatureDisabledError, False),
            (999, "something new", api.GET_TASK, KieError, False),
        ],
    )
    def test_body_code_on_http_200(self, code, msg, operation, cls, retryable):
        with pytest.raises(KieError) as info:
            api.parse_reply(envelope(code, msg), http_status=200, operation=operation)
        error = info.value
        assert type(error) is cls
        assert error.code == code
        assert error.retryable is retryable
        assert error.may_have_created_task is False  # Kie answered: nothing was created
        assert msg in str(error)

    def test_http_429_with_retry_after(self):
        with pytest.raises(KieRateLimitError) as info:
            api.parse_reply(envelope(429, "Rate limit"), http_status=429, operation="x", retry_after=3.0)
        assert info.value.retry_after == 3.0
        assert info.value.http_status == 429

    def test_http_error_with_ok_body_is_still_an_error(self):
        with pytest.raises(KieServerError):
            api.parse_reply(envelope(200), http_status=503, operation=api.GET_TASK)

    def test_html_gateway_page(self):
        page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
        with pytest.raises(KieServerError) as info:
            api.parse_reply(page, http_status=502, operation=api.CREATE_TASK)
        assert "502 Bad Gateway" in info.value.message
        assert "<" not in info.value.message
        assert info.value.may_have_created_task is True  # a gateway may have forwarded it

    def test_http_503_without_body_did_not_create(self):
        with pytest.raises(KieServerError) as info:
            api.parse_reply(b"", http_status=503, operation=api.CREATE_TASK)
        assert info.value.may_have_created_task is False
        assert info.value.retryable

    @pytest.mark.parametrize(
        "body",
        [b"", b"<html>Just a moment</html>", b'{"code": 200, "msg": "suc', b"\xff\xfe", b"[1, 2]", b"null"],
    )
    def test_not_an_envelope_on_http_200(self, body):
        with pytest.raises(KieProtocolError) as info:
            api.parse_reply(body, http_status=200, operation=api.CREATE_TASK)
        assert info.value.retryable and info.value.may_have_created_task

    def test_non_numeric_code(self):
        with pytest.raises(KieProtocolError):
            api.parse_reply(b'{"code": "ok", "msg": "x"}', http_status=200, operation="x")


class TestTask:
    def test_success_record(self):
        task = api.parse_task(SUCCESS_RECORD)
        assert task.state is TaskState.SUCCESS and task.is_terminal
        assert task.result_urls == ("https://tempfile.aiquickdraw.com/a.png",)
        assert task.credits_consumed == Decimal("6.5")
        assert task.fail_code is None and task.fail_msg is None
        assert task.created_at == pendulum.datetime(2026, 1, 29, 16, 38, 36)
        assert task.completed_at == pendulum.from_timestamp(1769704767)
        assert task.param == {"model": "seedream/4.5-edit", "input": {"prompt": "p"}}

    def test_result_json_as_object(self):
        record = {**SUCCESS_RECORD, "resultJson": {"resultUrls": ["https://x/y.png"]}}
        assert api.parse_task(record).result_urls == ("https://x/y.png",)

    def test_result_json_not_json(self):
        record = {**SUCCESS_RECORD, "resultJson": '{"resultUrls": ["https://x'}
        with pytest.raises(KieProtocolError) as info:
            api.parse_task(record)
        assert not info.value.retryable
        assert SUCCESS_RECORD["taskId"] in str(info.value)

    def test_success_without_result_urls(self):
        with pytest.raises(KieProtocolError, match="no resultUrls"):
            api.parse_task({**SUCCESS_RECORD, "resultJson": '{"images": []}'})

    def test_text_model_result_object(self):
        task = api.parse_task({**SUCCESS_RECORD, "resultJson": '{"resultObject": {"text": "hi"}}'})
        assert task.result_urls == () and task.result == {"resultObject": {"text": "hi"}}

    def test_failed_record(self):
        record = {
            **SUCCESS_RECORD,
            "state": "fail",
            "resultJson": "",
            "failCode": "422",
            "failMsg": "Invalid prompt",
            "creditsConsumed": 0,
        }
        task = api.parse_task(record)
        assert task.state is TaskState.FAIL and task.is_terminal
        assert (task.fail_code, task.fail_msg, task.result_urls) == ("422", "Invalid prompt", ())

    def test_callback_shape_with_nulls_and_old_credit_name(self):
        record = {
            "taskId": "t1",
            "state": "fail",
            "resultJson": None,
            "failCode": None,
            "failMsg": None,
            "consumeCredits": "0",
            "remainedCredits": 10,
        }
        task = api.parse_task(record)
        assert task.fail_code is None and task.credits_consumed == 0 and task.completed_at is None

    @pytest.mark.parametrize("state", ["waiting", "queuing", "generating"])
    def test_pending_states(self, state):
        task = api.parse_task({"taskId": "t", "state": state, "resultJson": "", "completeTime": None})
        assert not task.is_terminal and task.completed_at is None

    def test_unknown_state_is_not_terminal(self):
        task = api.parse_task({"taskId": "t", "state": "rendering"})
        assert task.state is TaskState.UNKNOWN and not task.is_terminal and task.raw_state == "rendering"

    def test_double_encoded_input_in_param(self):
        inner = json.dumps({"prompt": "p", "image_urls": ["https://a/b.png"]})
        task = api.parse_task({"taskId": "t", "state": "waiting", "param": json.dumps({"input": inner})})
        assert task.param == {"input": {"prompt": "p", "image_urls": ["https://a/b.png"]}}

    @pytest.mark.parametrize("data", [None, "x", [], {"state": "success"}, {"taskId": 5}])
    def test_malformed_record(self, data):
        with pytest.raises(KieProtocolError):
            api.parse_task(data)

    def test_record_round_trips_through_json(self):
        task = api.parse_task(SUCCESS_RECORD)
        record = json.loads(json.dumps(task.to_dict()))
        again = KieTask.from_dict(record)
        assert again.kie_task_id == task.kie_task_id and again.result_urls == task.result_urls
        assert again.credits_consumed == task.credits_consumed and again.completed_at == task.completed_at


class TestOtherReplies:
    def test_task_id(self):
        assert api.parse_task_id({"taskId": "abc", "recordId": "abc"}) == "abc"

    @pytest.mark.parametrize("data", [None, {}, {"taskId": ""}, "abc"])
    def test_task_id_missing(self, data):
        with pytest.raises(KieProtocolError) as info:
            api.parse_task_id(data)
        assert info.value.may_have_created_task

    @pytest.mark.parametrize(("data", "expected"), [(100, "100"), (35.95, "35.95"), ("5212.88", "5212.88")])
    def test_credits_are_decimal(self, data, expected):
        assert api.parse_credits(data) == Decimal(expected)

    @pytest.mark.parametrize("data", [None, "lots", True, {"credits": 1}, "NaN"])
    def test_credits_malformed(self, data):
        with pytest.raises(KieProtocolError):
            api.parse_credits(data)

    def test_download_url(self):
        assert api.parse_download_url("https://tempfile.x/y.png?t=1") == "https://tempfile.x/y.png?t=1"
        with pytest.raises(KieProtocolError):
            api.parse_download_url(None)

    def test_upload_both_documented_shapes(self):
        spec = {
            "fileName": "a.png",
            "filePath": "p/a.png",
            "downloadUrl": "https://tempfile.redpandaai.co/a.png",
        }
        quickstart = {"fileId": "f", "fileUrl": "https://x/a.png", "downloadUrl": "https://y/a.png"}
        assert api.parse_upload(spec) == "https://tempfile.redpandaai.co/a.png"
        assert api.parse_upload(quickstart) == "https://y/a.png"

    def test_retry_after(self):
        assert api.parse_retry_after("7") == 7.0
        assert api.parse_retry_after(None) is None
        assert api.parse_retry_after("soon") is None
        assert api.parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480) == 10.0


def test_state_terminality():
    assert {s for s in TaskState if s.is_terminal} == {TaskState.SUCCESS, TaskState.FAIL}


def test_error_event_round_trip():
    error = api.classify_error(429, "slow down", operation=api.CREATE_TASK, http_status=429)
    again = KieError.from_event(json.loads(json.dumps(error.to_event())), conn_id="kie_default")
    assert type(again) is KieRateLimitError and again.code == 429 and again.retryable


def test_frames_are_results_and_a_result_object_survives_the_record():
    frames = {
        "resultUrls": ["https://r/v.mp4"],
        "firstFrameUrl": "https://r/f.png",
        "lastFrameUrl": "https://r/l.png",
    }
    task = api.parse_task({"taskId": "t", "state": "success", "resultJson": json.dumps(frames)})
    assert task.result_urls == ("https://r/v.mp4", "https://r/f.png", "https://r/l.png")
    data = {"resultObject": {"text": "hello"}}
    task = api.parse_task({"taskId": "t", "state": "success", "resultJson": json.dumps(data)})
    assert task.result_urls == () and task.result_object == {"text": "hello"}
    assert KieTask.from_dict(task.to_dict()).result_object == {"text": "hello"}
    assert "result_object" not in api.parse_task({"taskId": "t", "state": "generating"}).to_dict()
