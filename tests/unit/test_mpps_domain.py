"""The moves a performed procedure step may make, exhaustively (PS3.4 F.7, PS3.3 C.4.14)."""

from __future__ import annotations

import itertools

import pytest

from telerad.domain.mpps import (
    ENDED,
    ORDER_EVENT,
    Refused,
    StepRefused,
    StepStatus,
    next_status,
    parse_status,
)
from telerad.domain.orders import OrderEvent

S = StepStatus


@pytest.mark.parametrize(
    ("current", "asked"), list(itertools.product([None, *StepStatus], list(StepStatus)))
)
def test_every_move(current: StepStatus | None, asked: StepStatus) -> None:
    if current is None:
        if asked is S.IN_PROGRESS:
            assert next_status(current, asked) is S.IN_PROGRESS
        else:
            with pytest.raises(StepRefused) as refused:
                next_status(current, asked)
            assert refused.value.reason is Refused.NOT_STARTED
    elif current in ENDED:
        with pytest.raises(StepRefused) as refused:
            next_status(current, asked)
        assert refused.value.reason is Refused.ENDED
        assert str(refused.value) == "Performed Procedure Step object may no longer be updated"
    else:
        assert next_status(current, asked) is asked  # IN PROGRESS may go anywhere


def test_statuses_as_modalities_send_them() -> None:
    assert parse_status("completed ") is S.COMPLETED
    assert parse_status("IN PROGRESS") is S.IN_PROGRESS
    for text, reason in (("", Refused.NO_STATUS), (None, Refused.NO_STATUS),
                         ("DONE", Refused.UNKNOWN_STATUS)):  # fmt: skip
        with pytest.raises(StepRefused) as refused:
            parse_status(text)
        assert refused.value.reason is reason


def test_each_status_moves_the_orders() -> None:
    assert ORDER_EVENT == {
        S.IN_PROGRESS: OrderEvent.START,
        S.COMPLETED: OrderEvent.COMPLETE,
        S.DISCONTINUED: OrderEvent.DISCONTINUE,
    }
