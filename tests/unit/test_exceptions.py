"""Error classes: flags per class, and every class registered so that it survives a trigger event."""

from __future__ import annotations

import pytest

from airflow_provider_kie import exceptions
from airflow_provider_kie.exceptions import KieError

ALL = [cls for cls in vars(exceptions).values() if isinstance(cls, type) and issubclass(cls, KieError)]


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_every_class_is_registered_and_round_trips(cls):
    error = cls("p", "m") if cls is exceptions.KieInputError else cls("m", code=7)
    again = KieError.from_event(error.to_event())
    expected = exceptions.KieValidationError if cls is exceptions.KieInputError else cls
    assert type(again) is expected
    assert (again.retryable, again.may_have_created_task) == (cls.retryable, cls.may_have_created_task)


def test_flags_belong_to_classes():
    assert (
        exceptions.KieGatewayError.may_have_created_task
        and not exceptions.KieServerError.may_have_created_task
    )
    assert (
        exceptions.KieConnectionError.may_have_created_task
        and not exceptions.KieNotSentError.may_have_created_task
    )
    assert exceptions.KieProtocolError.retryable and not exceptions.KieBadRecordError.retryable
