"""The kernel side of the sidebar's capture button, in a real IPython shell.

The sidebar asks the kernel for ``_faas.capture(...)`` and reads the answer's text/plain;
these tests read it the same way (IPython's display formatter, and ``user_expressions``,
which is what a silent execute request returns).
"""

from __future__ import annotations

import hashlib
import json

import pytest
from IPython.core.interactiveshell import InteractiveShell

from jupyter_faas.bundle import Bundle
from jupyter_faas.sidebar_kernel import capture

PLAIN = "def main(args):\n    return {'y': helper(args['x'])}\n"
MAGIC = (
    "%%faas peaks --memory 384 --test '{\"x\": 2}'\n"
    "def main(args):\n    return {'y': args['x'] + OFFSET}\n"
)


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """A fresh IPython shell working in a temporary folder (bundles land in ./functions)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FAAS_BUNDLE_DIR", raising=False)
    InteractiveShell.clear_instance()
    made = InteractiveShell.instance()
    made.run_cell("SCALE = 3\n\ndef helper(x):\n    return x * SCALE\n", store_history=True)
    made.run_cell("OFFSET = 10", store_history=True)
    yield made
    InteractiveShell.clear_instance()


def text_plain(shell, value) -> dict:
    """The answer as the sidebar sees it: IPython's text/plain of the value, parsed as JSON."""
    data, _ = shell.display_formatter.format(value)
    return json.loads(data["text/plain"])


def test_a_plain_cell_is_captured_then_run(shell, tmp_path):
    answer = text_plain(shell, capture("triple", PLAIN, 256, 30))
    bundle = Bundle.load(tmp_path / "functions" / "triple")
    assert answer == {
        "ok": True,
        "bundle": str(bundle.path.resolve()),
        "name": "triple",
        "code_sha256": bundle.code_sha256(),
    }
    assert (bundle.metadata.memory_mb, bundle.metadata.timeout_s) == (256, 30.0)
    assert "def helper(x):" in bundle.code and "SCALE = 3" in bundle.code
    assert shell.user_ns["main"]({"x": 2}) == {"y": 6}, "the cell ran in the kernel"


def test_a_faas_cell_takes_name_and_options_from_its_line(shell, tmp_path):
    # The line's --memory wins over the sidebar's; its missing --timeout takes the sidebar's.
    answer = text_plain(shell, capture(None, MAGIC, 256, 12))
    assert answer["ok"] is True and answer["name"] == "peaks"
    bundle = Bundle.load(tmp_path / "functions" / "peaks")
    assert answer["bundle"] == str(bundle.path.resolve())
    assert bundle.metadata.memory_mb == 384 and bundle.metadata.timeout_s == 12.0
    assert bundle.metadata.test_input == {"x": 2}
    assert "%%faas" not in bundle.code and "OFFSET = 10" in bundle.code
    assert shell.user_ns["main"]({"x": 1}) == {"y": 11}


def test_ignore_keys_on_the_line_are_stored_for_later_tests(shell, tmp_path):
    source = "%%faas timed --ignore-keys time,stats.elapsed\ndef main(args):\n    return {}\n"
    assert text_plain(shell, capture(None, source))["ok"] is True
    bundle = Bundle.load(tmp_path / "functions" / "timed")
    assert bundle.metadata.ignore_keys == ["time", "stats.elapsed"]
    bad = text_plain(shell, capture(None, source.replace("time,", "a..b,")))
    assert bad["ok"] is False and bad["error"].startswith('Cannot ignore keys "a..b"')


def test_the_silent_request_path_returns_bare_json(shell):
    # What the sidebar sends: an import in the code and the call as a user expression.
    shell.run_cell("import jupyter_faas.sidebar_kernel as _faas", store_history=False)
    source = json.dumps(MAGIC)
    reply = shell.user_expressions({"faas": f"_faas.capture(None, {source}, None, None)"})
    assert reply["faas"]["status"] == "ok"
    answer = json.loads(reply["faas"]["data"]["text/plain"])
    assert answer["ok"] is True and answer["name"] == "peaks"
    assert answer["bundle"].endswith("/functions/peaks")


def test_the_magics_workspace_settings_apply(shell, tmp_path):
    shell.run_line_magic("load_ext", "jupyter_faas")
    shell.run_line_magic("config", "FaaSWorkspace.bundle_dir = 'notebook_functions'")
    answer = text_plain(shell, capture("triple", PLAIN))
    assert answer["bundle"] == str((tmp_path / "notebook_functions" / "triple").resolve())


@pytest.mark.parametrize(
    ("name", "source", "memory", "timeout", "message"),
    [
        (None, PLAIN, None, None, "Give the function a name"),
        ("", PLAIN, None, None, "Give the function a name"),
        ("Bad_Name", PLAIN, None, None, "'Bad_Name' is not a valid function name"),
        ("triple", "x = 1\n", None, None, "The cell defines no function 'main'"),
        (
            "triple",
            "def main(args):\n    return undefined_name\n",
            None,
            None,
            "'undefined_name', which is not defined",
        ),
        ("triple", "def main(args:\n", None, None, "Syntax error"),
        ("triple", PLAIN, 4096, None, "--memory 4096 is outside 128-512"),
        ("triple", PLAIN, 256.5, None, "whole number of MB"),
        ("triple", PLAIN, 256, "soon", "number of seconds"),
        ("triple", PLAIN, 256, 1000, "--timeout 1000 is outside"),
        ("triple", b"def main(args): pass", None, None, "must be a string, not bytes"),
        (None, "%%faas\ndef main(args):\n    return {}\n", None, None, "required: name"),
        (
            None,
            "%%faas peaks --memory lots\ndef main(args):\n    return {}\n",
            None,
            None,
            "invalid int value",
        ),
        (
            None,
            "%%faas peaks --colour red\ndef main(args):\n    return {}\n",
            None,
            None,
            "unrecognized arguments",
        ),
        (
            None,
            "%%faas peaks --test '{\ndef main(args):\n    return {}\n",
            None,
            None,
            "Cannot split the %%faas line",
        ),
        (
            None,
            "%%faas peaks --test '[1]'\ndef main(args):\n    return {}\n",
            None,
            None,
            "must be a JSON object",
        ),
        (
            None,
            "%%faas peaks --test 'nope'\ndef main(args):\n    return {}\n",
            None,
            None,
            "not valid JSON",
        ),
    ],
)
def test_errors_are_answers_not_exceptions(shell, tmp_path, name, source, memory, timeout, message):
    answer = text_plain(shell, capture(name, source, memory, timeout))
    assert answer["ok"] is False
    assert message in answer["error"]
    assert answer["reason"] in ("usage", "capture", "bundle", "bad-name")
    extra = {"suggestion"} if answer["reason"] == "bad-name" else set()
    assert set(answer) == {"ok", "error", "reason"} | extra
    assert not (tmp_path / "functions").exists(), "nothing is written for a refused cell"


def test_a_bad_faas_line_shows_the_usage(shell):
    answer = text_plain(
        shell, capture(None, "%%faas --memory 256\ndef main(args):\n    return {}\n")
    )
    assert answer["error"].endswith(
        "Usage: %%faas NAME [--memory MB] [--timeout S] [--handler NAME] [--test 'JSON'] "
        "[--ignore-keys time,stats.elapsed]"
    )


def test_a_cell_that_fails_in_the_kernel_is_reported_after_capture(shell, tmp_path):
    source = "def main(args):\n    return {}\n\nprint(1 / 0)\n"
    answer = text_plain(shell, capture("fails", source))
    assert answer["ok"] is False
    assert "captured to" in answer["error"] and "ZeroDivisionError" in answer["error"]
    assert (tmp_path / "functions" / "fails" / "faas.json").exists()


def test_outside_a_kernel_it_answers_with_an_error(monkeypatch):
    InteractiveShell.clear_instance()
    answer = json.loads(capture("triple", PLAIN))
    assert answer == {
        "ok": False,
        "error": "capture() runs inside an IPython kernel (the sidebar calls it there).",
        "reason": "usage",
    }


def test_the_sidebars_cell_id_notebook_and_test_input_are_recorded(shell, tmp_path):
    # Issue 12: the origin of the function (for provenance and claims), the test input the
    # sidebar keeps in the cell's metadata (it wins over --test), and the cell's lines.
    answer = text_plain(
        shell,
        capture(
            None,
            MAGIC,
            None,
            None,
            cell_id="c-17",
            notebook="demo/peaks.ipynb",
            test_input={"x": 40},
        ),
    )
    assert answer["ok"] is True, answer
    metadata = Bundle.load(tmp_path / "functions" / "peaks").metadata
    assert metadata.cell == {
        "notebook": "demo/peaks.ipynb",
        "cell_id": "c-17",
        "cell_sha256": hashlib.sha256(MAGIC.encode()).hexdigest(),
        "execution_count": None,
    }
    assert metadata.test_input == {"x": 40}
    # main's return line is line 3 of the cell (the %%faas line is line 1).
    code = Bundle.load(tmp_path / "functions" / "peaks").code.splitlines()
    handler_line = code.index("    return {'y': args['x'] + OFFSET}") + 1
    assert metadata.cell_line(handler_line) == 3
    assert metadata.cell_line(1) is None  # the header is not the cell's


def test_a_test_input_that_is_not_an_object_is_refused(shell, tmp_path):
    answer = text_plain(shell, capture("triple", PLAIN, test_input=[1, 2]))
    assert answer["ok"] is False and "must be a JSON object, not list" in answer["error"]
    assert not (tmp_path / "functions").exists()


@pytest.mark.docker
def test_the_function_pages_test_runs_container_and_kernel(
    shell, tmp_path, base_image, test_labels
):
    """``_faas.test(NAME, INPUT)``: the container's run, the kernel's twin and the verdict, as
    ``%%faas --test`` shows them; another cell's ``main`` is no twin; errors are answers."""
    from jupyter_faas import sidebar_kernel

    shell.run_line_magic("load_ext", "jupyter_faas")
    shell.run_line_magic("config", f"DockerBuilder.extra_labels = {dict(test_labels)!r}")
    shell.run_line_magic("config", f"FaaSImages.base_image = {base_image!r}")
    assert text_plain(shell, capture("triple", PLAIN, 256, 30))["ok"]
    answer = text_plain(shell, sidebar_kernel.test("triple", '{"x": 2}'))
    assert answer["verdict"] == "equal" and answer["ok"] is True, answer
    assert answer["container"]["result"] == {"y": 6} == answer["kernel"]["result"]
    assert answer["differences"] == []
    recorded = json.loads((tmp_path / "functions" / "triple" / "test.json").read_text())
    assert recorded["verdict"] == "equal" and recorded["input"] == {"x": 2}

    shell.run_cell("def main(args):\n    return {'y': -1}\n")  # another cell's main
    answer = text_plain(shell, sidebar_kernel.test("triple", '{"x": 1}'))
    assert answer["kernel"] is None and answer["verdict"] == "container only", answer

    missing = text_plain(shell, sidebar_kernel.test("nosuch", "{}"))
    assert missing["ok"] is False and "nosuch" in missing["error"]
    bad = text_plain(shell, sidebar_kernel.test("triple", "[1, 2]"))
    assert bad["ok"] is False and "object" in bad["error"], bad
