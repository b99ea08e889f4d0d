"""The import's warning summary leaves out the values warnings quote (they may be PHI)."""

from __future__ import annotations

from telerad.cli.importer import without_values


def test_quoted_values_are_left_out() -> None:
    assert without_values("Invalid value for VR DA: '19801301x'.") == (
        "Invalid value for VR DA: '…'."
    )
    assert without_values("Invalid value for VR PN: \"DOE^JANE\" and 'x'") == (
        "Invalid value for VR PN: '…' and '…'"
    )
    message = "The value length (70) exceeds the maximum length of 64 allowed for VR LO."
    assert without_values(message) == message
