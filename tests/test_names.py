"""Function names are refused saying why, with a valid and different suggestion (issue 12, 7)."""

from __future__ import annotations

import pytest

from jupyter_faas.bundle import MAX_NAME_LENGTH, NAME_PATTERN, BadName, check_name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("p" * 70, ["70 characters long", f"over the limit of {MAX_NAME_LENGTH}"]),
        ("peaks-" + "x" * 64, ["70 characters long"]),
        ("My Peaks!", ["' '", "'!'", "'M'", "capitals: use lowercase"]),
        ("peaks_v2", ["'_'"]),
        ("-peaks-", ["starts or ends with '-'"]),
        ("", ["it is empty"]),
        ("---", ["starts or ends with '-'"]),
        ("ünïcode", ["'ü'", "'ï'"]),
    ],
)
def test_a_bad_name_says_why_and_suggests_a_valid_different_one(name, words):
    with pytest.raises(BadName) as caught:
        check_name(name)
    err = caught.value
    for word in words:
        assert word in err.message, err.message
    suggestion = err.suggestion
    assert suggestion != name
    assert NAME_PATTERN.match(suggestion) and len(suggestion) <= MAX_NAME_LENGTH
    assert check_name(suggestion) == suggestion
    assert repr(suggestion) in str(err)  # the hint shows it
    assert err.to_json() == {"error": str(err), "reason": "bad-name", "suggestion": suggestion}


def test_a_long_name_is_cut_to_the_limit_not_to_a_trailing_dash():
    name = "a" * 62 + "-b" + "c" * 10
    with pytest.raises(BadName) as caught:
        check_name(name)
    assert caught.value.suggestion == "a" * 62
