import pytest
from hypothesis import given
from hypothesis import strategies as st

from telerad.domain.uids import InvalidUID, check_uid, is_valid_uid


@pytest.mark.parametrize(
    "uid",
    ["1.2.840.10008.1.2", "2.25.123456789012345678901234567890", "0.1", "1"],
)
def test_valid_uids(uid: str) -> None:
    assert is_valid_uid(uid)
    assert check_uid("X", uid + "\x00") == uid


@pytest.mark.parametrize(
    ("uid", "why"),
    [
        ("", "missing"),
        ("1.2." + "3" * 61, "longer than 64"),
        ("1.2.abc", "characters"),
        ("1..2", "characters"),
        ("1.02", "characters"),
        ("../../etc/passwd", "characters"),
        ("1.2/3", "characters"),
    ],
)
def test_invalid_uids_name_the_problem(uid: str, why: str) -> None:
    assert not is_valid_uid(uid)
    with pytest.raises(InvalidUID, match=why):
        check_uid("SOPInstanceUID", uid)


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=8))
def test_any_well_formed_uid_is_accepted(components: list[int]) -> None:
    uid = ".".join(str(c) for c in components)
    assert is_valid_uid(uid) == (len(uid) <= 64)


@given(st.text(min_size=1, max_size=80))
def test_valid_uids_never_contain_path_characters(text: str) -> None:
    if is_valid_uid(text):
        assert set(text) <= set("0123456789.")
