"""The custom_id scheme (nightbatch.custom_ids): building, binding and reading custom_ids back."""

from __future__ import annotations

import pytest

from nightbatch import custom_ids
from nightbatch.custom_ids import CustomId, Kind


def test_a_bound_custom_id_parses_back_to_what_built_it():
    unbound = custom_ids.build(Kind.TASK, 1234, 2)
    bound = custom_ids.bind(unbound, row=42, installation="k3v9q0b2xa")
    assert len(bound) == len(unbound)
    assert custom_ids.require(bound) == CustomId(Kind.TASK, 1234, 2, 42, "k3v9q0b2xa")
    assert custom_ids.require(bound).belongs_to("k3v9q0b2xa")
    assert not custom_ids.require(unbound).belongs_to("k3v9q0b2xa")


def test_require_names_a_custom_id_that_is_not_ours():
    with pytest.raises(ValueError, match="not one of our custom_ids: 'req-7'"):
        custom_ids.require("req-7")
    assert custom_ids.parse("req-7") is None


@pytest.mark.parametrize(
    ("custom_id", "task", "shadow", "calibration"),
    [("t12-1-0000000001-abcdefghij", 12, None, None), ("s12-1", None, 12, None), ("c12", None, None, 12)],
)
def test_each_kind_names_its_task(custom_id: str, task: int | None, shadow: int | None, calibration: int | None):
    assert custom_ids.task_id(custom_id) == task
    assert custom_ids.shadow_task_id(custom_id) == shadow
    assert custom_ids.calibration_task_id(custom_id) == calibration


def test_a_damaged_result_line_still_names_its_custom_id():
    line = '{"custom_id": "t5-1-0000000003-abcdefghij", "result": {"type": "succ'
    assert custom_ids.named_in(line) == "t5-1-0000000003-abcdefghij"
    assert custom_ids.named_in(line.encode()) == "t5-1-0000000003-abcdefghij"
    assert custom_ids.named_in('{"result": {}}') is None
    assert custom_ids.named_in(b'{"custom_id": "bad id!"}') is None
