import pytest

from vlaworks.eval.chunking import actions_per_chunk, validate_chunk_exec


@pytest.mark.parametrize(
    ("mode", "length", "expected"),
    [("full", 8, 8), ("half", 8, 4), ("half", 5, 3), ("1", 8, 1), ("3", 8, 3), ("16", 8, 8), ("half", 1, 1)],
)
def test_actions_per_chunk(mode, length, expected):
    assert actions_per_chunk(mode, length) == expected


def test_bad_modes_are_rejected_with_the_valid_ones_named():
    assert validate_chunk_exec(" Full ") == "full"
    for bad in ("quarter", "0", "-1", ""):
        with pytest.raises(ValueError, match="'full', 'half'"):
            validate_chunk_exec(bad)
    with pytest.raises(ValueError, match="at least one action"):
        actions_per_chunk("full", 0)
