"""Site settings that reach a Dockerfile are checked and quoted (project issue 9, finding 14)."""

from __future__ import annotations

import shlex

import pytest

from jupyter_faas import image
from jupyter_faas.errors import ConfigError
from jupyter_faas.image import FaaSImages
from jupyter_faas.site import FaaSSite

TWO = "https://a.example.org/simple https://b.example.org/simple"


def _site(**kw) -> FaaSSite:
    return FaaSSite(**{"ca_bundle": "", "http_proxy": "", "https_proxy": "", "no_proxy": "", **kw})


@pytest.mark.parametrize(
    ("trait", "value", "words"),
    [
        ("pip_index_url", "https://x.example.org/simple\nRUN touch /pwned", "control character"),
        ("pip_extra_index_url", "https://a.example.org/\nRUN id", "control character"),
        ("pip_extra_index_url", "https://a.example.org/ ;id", "not a valid URL"),
        ("pip_extra_index_url", "https://a.example.org/ $(id)", "not a valid URL"),
        ("pip_index_url", "ftp://x.example.org/simple", "scheme"),
        ("pip_index_url", "https:///simple", "no host"),
        ("pip_index_url", "https://x.example.org/'; id; '", "quote"),
        ("http_proxy", "http://proxy:3128\r\nX: y", "control character"),
        ("https_proxy", "proxy.example.org:3128", "scheme"),
        ("no_proxy", "localhost,$(id)", "not a host"),
    ],
)
def test_site_refuses_bad_values(trait, value, words):
    with pytest.raises(ConfigError) as info:
        _site(**{trait: value})
    message = str(info.value)
    assert f"c.FaaSSite.{trait}" in message and words in message
    named = [repr(value), *(repr(word) for word in value.split())]  # the value, or its bad URL
    assert any(name in message for name in named) or "entry" in message


@pytest.mark.parametrize(
    "value",
    [
        "python:3.11-slim\nRUN touch /pwned",
        "python:3.11 AS x",
        "--network=host",
        "Python:3.11",
        "python:3.11;id",
    ],
)
def test_base_image_refuses_non_references(value):
    with pytest.raises(ConfigError, match="c.FaaSImages.base_image") as info:
        FaaSImages(base_image=value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "python:3.11-slim",
        "jupyter-faas-base:bookworm",
        "registry.example.org:5000/team/python:3.11",
        "localhost:5000/py@sha256:" + "a" * 64,
    ],
)
def test_base_image_accepts_references(value):
    assert FaaSImages(base_image=value).base_image == value


def test_dockerfile_refuses_a_newline_in_the_base_image_passed_directly():
    with pytest.raises(ConfigError, match="not a Docker image reference|control character"):
        image.dockerfile("python:3.11\nRUN id", "k" * 64, _site())


def test_two_extra_index_urls_reach_pip_as_one_variable():
    site = _site(pip_extra_index_url=TWO, pip_index_url="https://pypi.example.org/simple")
    text = image.dockerfile("python:3.11-slim", "k" * 64, site)
    run = next(line for line in text.splitlines() if line.startswith("RUN "))
    words = shlex.split(run[len("RUN ") :])
    assert f"PIP_EXTRA_INDEX_URL={TWO}" in words
    assert "PIP_INDEX_URL=https://pypi.example.org/simple" in words
    assert "https://b.example.org/simple" not in words  # not a word (a command) of its own
    assert len(text.splitlines()) == len(
        image.dockerfile("python:3.11-slim", "k" * 64, _site()).splitlines()
    )


def test_extra_index_urls_are_normalised_to_single_spaces():
    assert _site(pip_extra_index_url=f"  {TWO.replace(' ', '   ')} ").pip_extra_index_url == TWO


@pytest.mark.docker
def test_two_extra_index_urls_build(tmp_path):
    """A real build: the RUN step sees both URLs in one variable (no pip needed)."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception:
        pytest.skip("no Docker engine")
    site = _site(pip_extra_index_url=TWO)
    base = FaaSImages().base_image
    try:
        client.images.get(base)
    except docker.errors.ImageNotFound:
        pytest.skip(f"base image {base} not present")
    text = image.dockerfile(base, "k" * 64, site)
    run = next(line for line in text.splitlines() if line.startswith("RUN "))
    # The generated text of the variables, as it stands before pip in the RUN line.
    env_text = run.split(" && ", 1)[1].split(" /faas/venv/bin/pip ", 1)[0]
    check = shlex.quote(f'test "$PIP_EXTRA_INDEX_URL" = "{TWO}"')
    probe = f"FROM {base}\nRUN {env_text} sh -c {check}\n"
    ctx = image.tar_context({"Dockerfile": probe.encode()})
    img, _ = client.images.build(fileobj=ctx, custom_context=True, rm=True, forcerm=True)
    client.images.remove(img.id, force=True)


# ---- data mounts: functions take data by reference ----------------------------------------


@pytest.mark.parametrize(
    ("mounts", "words"),
    [
        ({"relative/dir": "/data"}, "is not an absolute path of a directory"),
        ({"/no/such/dir": "/data"}, "is not an absolute path of a directory"),
        ({"{tmp}": "data"}, "is not a plain absolute path"),
        ({"{tmp}": "/data/../etc"}, "is not a plain absolute path"),
        ({"{tmp}": "/data:ro"}, "is not a plain absolute path"),
        ({"{tmp}": "/"}, "would hide the runtime or the system"),
        ({"{tmp}": "/faas/data"}, "would hide the runtime or the system"),
        ({"{tmp}": "/tmp/data"}, "would hide the runtime or the system"),
        ({"{tmp}": "/data", "{other}": "/data/more:rw"}, "overlaps another mount"),
    ],
)
def test_bad_data_mounts_are_refused(tmp_path, mounts, words):
    other = tmp_path / "other"
    other.mkdir()
    mounts = {k.format(tmp=tmp_path, other=other): v for k, v in mounts.items()}
    with pytest.raises(ConfigError) as err:
        FaaSSite(data_mounts=mounts, ca_bundle="")
    assert words in str(err.value) and "c.FaaSSite.data_mounts" in str(err.value)


def test_data_mounts_become_volumes_and_paths_map_into_them(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    (raw / "run1").mkdir(parents=True)
    out.mkdir()
    site = FaaSSite(data_mounts={str(raw): "/data", str(out): "/results:rw"}, ca_bundle="")
    assert site.container_volumes() == {
        str(raw): {"bind": "/data", "mode": "ro"},
        str(out): {"bind": "/results", "mode": "rw"},
    }
    assert site.container_path(raw / "run1" / "frames.h5") == "/data/run1/frames.h5"
    assert site.container_path(raw) == "/data"
    assert site.container_path(out / "stream") == "/results/stream"
    with pytest.raises(ConfigError, match="under no data mount, so functions cannot read it"):
        site.container_path(tmp_path / "elsewhere.h5")
    with pytest.raises(ConfigError, match="under no data mount"):
        site.container_path(raw / ".." / "escape.h5")
