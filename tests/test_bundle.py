"""Bundle folders: name and limit rules, the write/load round trip, and load errors."""

from __future__ import annotations

import ast
import json

import pytest

from jupyter_faas.bundle import (
    HANDLER_FILE,
    METADATA_FILE,
    REQUIREMENTS_FILE,
    Bundle,
    FunctionMetadata,
    check_limits,
    check_name,
)
from jupyter_faas.errors import BundleError


@pytest.mark.parametrize("name", ["peaks", "a", "peak-finder-2", "0x1", "a" * 63])
def test_valid_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("Peaks", "'peaks'"),
        ("peak_finder", "'peak-finder'"),
        ("-peaks", "'peaks'"),
        ("peaks-", "'peaks'"),
        ("peak finder", "'peak-finder'"),
        ("a" * 64, repr("a" * 63)),
        ("", "'my-function'"),
    ],
)
def test_invalid_names_suggest_a_valid_one(name, suggestion):
    with pytest.raises(BundleError) as info:
        check_name(name)
    message = str(info.value)
    assert f"{name!r} is not a valid function name" in message
    assert "lowercase letters, digits and '-'" in message
    assert "at most 63 characters" in message
    assert f"For example: {suggestion}" in message
    check_name(ast.literal_eval(suggestion))  # the suggestion itself is valid


@pytest.mark.parametrize(("memory", "timeout"), [(128, 0.1), (256, 60), (512, 300)])
def test_limits_in_range(memory, timeout):
    check_limits(memory, timeout)


@pytest.mark.parametrize(
    ("memory", "timeout", "words"),
    [
        (64, 60, ["--memory 64", "128-512 MB", "--memory 256"]),
        (1024, 60, ["--memory 1024", "128-512 MB"]),
        (256, 0, ["--timeout 0", "0.1-300 seconds", "--timeout 60"]),
        (256, 301, ["--timeout 301", "0.1-300 seconds"]),
    ],
)
def test_limits_out_of_range(memory, timeout, words):
    with pytest.raises(BundleError) as info:
        check_limits(memory, timeout)
    for word in words:
        assert word in str(info.value)


def test_write_load_round_trip(tmp_path):
    module_dir = tmp_path / "src"
    (module_dir / "mypkg").mkdir(parents=True)
    (module_dir / "mypkg" / "__init__.py").write_text("X = 1\n")
    (module_dir / "single.py").write_text("Y = 2\n")
    metadata = FunctionMetadata(
        name="peaks", handler="main", memory_mb=512, timeout_s=2.5, test_input={"t": 3.0}
    )
    code = "def main(args):\n    return {'n': 1}\n"
    written = Bundle.write(
        tmp_path / "functions" / "peaks",
        metadata,
        code,
        ["numpy==2.0.0", "scipy==1.14.0"],
        {"mypkg": str(module_dir / "mypkg"), "single": str(module_dir / "single.py")},
    )
    loaded = Bundle.load(tmp_path / "functions" / "peaks")
    assert loaded.metadata == written.metadata
    assert loaded.name == "peaks"
    assert loaded.metadata.test_input == {"t": 3.0}
    assert loaded.code.endswith(code)
    assert loaded.code.startswith('"""Function \'peaks\'')
    assert loaded.requirements == "numpy==2.0.0\nscipy==1.14.0\n"
    assert (loaded.path / "mypkg" / "__init__.py").read_text() == "X = 1\n"
    assert (loaded.path / "single.py").read_text() == "Y = 2\n"
    assert len(loaded.metadata.source_sha256) == 64
    # The code hash covers handler.py and the local modules.
    before = loaded.code_sha256()
    (loaded.path / "single.py").write_text("Y = 3\n")
    assert loaded.code_sha256() != before


def test_rewrite_replaces_the_code(tmp_path):
    metadata = FunctionMetadata(name="f")
    Bundle.write(tmp_path, metadata, "def main(args):\n    return {'v': 1}\n", [])
    Bundle.write(tmp_path, FunctionMetadata(name="f"), "def main(args):\n    return {'v': 2}\n", [])
    assert "'v': 2" in Bundle.load(tmp_path).code
    assert "'v': 1" not in Bundle.load(tmp_path).code


def test_write_refuses_bad_name_and_limits(tmp_path):
    with pytest.raises(BundleError, match="not a valid function name"):
        Bundle.write(tmp_path / "x", FunctionMetadata(name="Bad_Name"), "", [])
    with pytest.raises(BundleError, match="--memory 4096"):
        Bundle.write(tmp_path / "x", FunctionMetadata(name="ok", memory_mb=4096), "", [])
    assert not (tmp_path / "x").exists()


def test_load_missing_requirements_means_none(tmp_path):
    (tmp_path / HANDLER_FILE).write_text("def main(args):\n    return args\n")
    (tmp_path / METADATA_FILE).write_text('{"name": "echo"}')
    bundle = Bundle.load(tmp_path)
    assert bundle.requirements == ""
    assert (tmp_path / REQUIREMENTS_FILE).exists()
    assert bundle.metadata.handler == "main" and bundle.metadata.memory_mb == 256


def test_load_not_a_folder(tmp_path):
    with pytest.raises(BundleError) as info:
        Bundle.load(tmp_path / "nowhere")
    assert "is not a folder" in str(info.value)
    assert "handler.py and faas.json" in str(info.value)


@pytest.mark.parametrize("missing", [HANDLER_FILE, METADATA_FILE])
def test_load_missing_file(tmp_path, missing):
    for name in {HANDLER_FILE, METADATA_FILE} - {missing}:
        (tmp_path / name).write_text('{"name": "x"}')
    with pytest.raises(BundleError) as info:
        Bundle.load(tmp_path)
    message = str(info.value)
    assert f"{missing} missing" in message
    assert "%%faas" in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", ["is not valid JSON", "line 1 column 2"]),
        ("[1, 2]", ['no "name" field']),
        ('{"handler": "main"}', ['no "name" field']),
        ('{"name": 5}', ["'name' must be a string, not 5"]),
        ('{"name": "x", "memory_mb": "256"}', ["'memory_mb' must be an integer (MB)", '"256"']),
        ('{"name": "x", "memory_mb": true}', ["'memory_mb' must be an integer (MB)", "true"]),
        ('{"name": "x", "timeout_s": null}', ["'timeout_s' must be a number (seconds)", "null"]),
        ('{"name": "x", "test_input": [1]}', ["'test_input' must be an object or null"]),
    ],
)
def test_load_invalid_metadata(tmp_path, text, words):
    (tmp_path / HANDLER_FILE).write_text("def main(args):\n    return args\n")
    (tmp_path / METADATA_FILE).write_text(text)
    with pytest.raises(BundleError) as info:
        Bundle.load(tmp_path)
    message = str(info.value)
    assert str(tmp_path / METADATA_FILE) in message
    for word in words:
        assert word in message
    assert '{"name": "peaks"' in message  # the hint shows a valid example


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"name": "Bad_Name"}, ["'Bad_Name' is not a valid function name", "'bad-name'"]),
        ({"name": "ok", "memory_mb": 1}, ["--memory 1", "128-512 MB"]),
        ({"name": "ok", "timeout_s": 900}, ["--timeout 900", "0.1-300 seconds"]),
    ],
)
def test_load_checks_name_and_limits(tmp_path, fields, words):
    (tmp_path / HANDLER_FILE).write_text("def main(args):\n    return args\n")
    (tmp_path / METADATA_FILE).write_text(json.dumps(fields))
    with pytest.raises(BundleError) as info:
        Bundle.load(tmp_path)
    for word in words:
        assert word in str(info.value)


def test_load_ignores_unknown_fields(tmp_path):
    (tmp_path / HANDLER_FILE).write_text("def main(args):\n    return args\n")
    (tmp_path / METADATA_FILE).write_text('{"name": "ok", "future_field": 1}')
    assert Bundle.load(tmp_path).name == "ok"
