"""An empty invoke input means ``{}`` in every face (issue 12, finding 9)."""

from __future__ import annotations

import pytest

from jupyter_faas.magics import parse_invoke_line
from jupyter_faas.widgets import InvokeForm


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("peaks", ("peaks", {}, False)),
        ("peaks ''", ("peaks", {}, False)),
        ('peaks "  "', ("peaks", {}, False)),
        ("peaks '' --async", ("peaks", {}, True)),
        ("peaks '{}'", ("peaks", {}, False)),
    ],
)
def test_the_magic_reads_an_empty_input_as_the_empty_object(line, expected):
    assert parse_invoke_line(line, {}) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_the_form_takes_an_empty_input_as_the_empty_object(text):
    form = InvokeForm("peaks", lambda params: None, initial="{}")
    form.input.value = text
    assert form.check() == {}
    assert form.button.disabled is False and form.status.value == ""
    form.input.value = "{bad"
    assert form.check() is None and form.button.disabled is True
    assert "Not valid JSON" in form.status.value
