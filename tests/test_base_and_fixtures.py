"""The offline base-image builder's checks and errors, and the shared Docker fixtures.

The full debootstrap (about a minute) is not run here: scripts/setup.sh runs it on
every fresh machine. These tests cover what fails fast and must explain itself.
"""

from __future__ import annotations

import http.server
import socket
import threading

import docker.errors
import pytest
import requests

from jupyter_faas import engine
from jupyter_faas.baseimage import FALLBACK_MIRROR, BaseImageBuilder, apt_mirror, base_build_main
from jupyter_faas.errors import BuildError, ConfigError


def loopback() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


@pytest.fixture
def empty_mirror(tmp_path):
    """An HTTP server on 127.0.0.1 that serves an empty folder: a mirror without any suite."""
    handler = type(
        "Quiet",
        (http.server.SimpleHTTPRequestHandler,),
        {"log_message": lambda self, *args: None},
    )
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/debian"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- mirror discovery -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "debian.sources",
            "Types: deb\n# http://snapshot.debian.org/archive/debian/1\n"
            "URIs: http://mirror.example/debian/ http://other/debian\nSuites: bookworm\n",
            "http://mirror.example/debian",
        ),
        (
            "sources.list",
            "# comment\ndeb-src http://src.example/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/k.gpg] https://mirror.example/debian bookworm main\n",
            "https://mirror.example/debian",
        ),
        ("empty.list", "", FALLBACK_MIRROR),
    ],
)
def test_apt_mirror_reads_what_apt_uses(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    assert apt_mirror((str(tmp_path / "missing.sources"), str(path))) == expected


def test_apt_mirror_falls_back_when_no_sources(tmp_path):
    assert apt_mirror((str(tmp_path / "nothing"),)) == FALLBACK_MIRROR


# --- settings that cannot work ----------------------------------------------------------


@pytest.mark.parametrize(
    ("trait", "value", "words"),
    [
        ("mirror", "deb.debian.org/debian", "http://, https:// or file://"),
        ("mirror", "ftp://deb.debian.org/debian", "c.BaseImageBuilder.mirror"),
        ("suite", "Bookworm 12", "release name"),
        ("packages", ["python3", "python3,curl"], "'python3,curl'"),
        ("image", "Jupyter Base", "--image"),
    ],
)
def test_bad_settings_are_rejected_with_the_fix(trait, value, words):
    with pytest.raises(ConfigError) as info:
        BaseImageBuilder(**{trait: value})
    assert words in str(info.value)


def test_missing_debootstrap_names_the_install_command(tmp_path):
    builder = BaseImageBuilder(debootstrap=str(tmp_path / "no-debootstrap"))
    with pytest.raises(ConfigError) as info:
        builder.build()
    assert "apt-get install debootstrap" in str(info.value)
    assert "no-debootstrap" in str(info.value)


def test_missing_debootstrap_by_name_is_looked_up_on_path():
    builder = BaseImageBuilder(debootstrap="no-such-debootstrap-here")
    with pytest.raises(ConfigError, match="apt-get install debootstrap"):
        builder.build()


def test_mirror_that_does_not_answer_fails_fast_and_names_it():
    mirror = f"http://127.0.0.1:{closed_port()}/debian"
    builder = BaseImageBuilder(mirror=mirror, debootstrap="/bin/true", mirror_timeout=5)
    with pytest.raises(BuildError) as info:
        builder.build()
    assert f"The Debian mirror {mirror} does not answer" in str(info.value)
    assert "c.BaseImageBuilder.mirror" in str(info.value)


def test_mirror_without_the_suite_names_the_suite(empty_mirror):
    builder = BaseImageBuilder(mirror=empty_mirror, suite="bookworm", debootstrap="/bin/true")
    with pytest.raises(BuildError) as info:
        builder.build()
    assert "has no suite 'bookworm'" in str(info.value)
    assert "404" in str(info.value)


def test_file_mirror_without_the_suite_names_the_suite(tmp_path):
    builder = BaseImageBuilder(mirror=f"file://{tmp_path}", debootstrap="/bin/true")
    with pytest.raises(BuildError, match="has no suite 'bookworm'"):
        builder.build()


def test_command_reports_errors_without_a_traceback(capsys):
    status = base_build_main(["--mirror", "deb.debian.org", "--quiet"])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("error: The Debian mirror 'deb.debian.org'")
    assert "Traceback" not in err


# --- shared fixtures ----------------------------------------------------------------------


def test_auth_registry_rejects_anonymous_and_wrong_password(auth_registry):
    session = loopback()
    url = f"{auth_registry.url}/v2/"
    assert session.get(url, timeout=5).status_code == 401
    wrong = session.get(url, auth=(auth_registry.username, "wrong"), timeout=5)
    assert wrong.status_code == 401
    assert session.get(url, auth=("nobody", auth_registry.password), timeout=5).status_code == 401


def test_auth_registry_accepts_the_right_credentials(auth_registry):
    answer = loopback().get(
        f"{auth_registry.url}/v2/_catalog",
        auth=(auth_registry.username, auth_registry.password),
        timeout=5,
    )
    assert answer.status_code == 200
    # The session's registry: empty, or holding what tests that ran before pushed.
    assert isinstance(answer.json()["repositories"], list)


@pytest.mark.docker
def test_docker_login_to_auth_registry(docker_client, auth_registry):
    with pytest.raises(docker.errors.APIError):
        docker_client.login(
            username=auth_registry.username,
            password="wrong",
            registry=auth_registry.address,
            reauth=True,
        )
    answer = docker_client.login(
        username=auth_registry.username,
        password=auth_registry.password,
        registry=auth_registry.address,
        reauth=True,
    )
    assert answer["Status"] == "Login Succeeded"


@pytest.mark.docker
def test_registry_fixture_answers(registry):
    assert loopback().get(f"http://{registry}/v2/_catalog", timeout=5).status_code == 200


@pytest.mark.docker
def test_base_image_runs_python(docker_client, base_image, test_labels):
    container = docker_client.containers.run(
        base_image,
        ["python3", "-c", "import sys, venv, ensurepip; print(sys.version_info[:2])"],
        labels=test_labels,
        detach=True,
    )
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        assert container.logs().decode().strip() == "(3, 11)"
    finally:
        engine.remove_container(container)


@pytest.mark.docker
def test_remove_labelled_removes_only_the_given_label(docker_client, base_image, test_labels):
    mine = {**test_labels, "org.jupyter-faas.case": "remove-labelled"}
    other = {**test_labels, "org.jupyter-faas.case": "keep"}
    made = [
        docker_client.containers.create(base_image, ["true"], labels=mine),
        docker_client.networks.create(
            f"faas-test-{test_labels['org.jupyter-faas.run']}", labels=mine
        ),
        docker_client.volumes.create(labels=mine),
    ]
    kept = docker_client.volumes.create(labels=other)
    removed = engine.remove_labelled(docker_client, **{"org.jupyter-faas.case": "remove-labelled"})
    assert removed == {"containers": 1, "networks": 1, "volumes": 1, "images": 0}
    for obj in made:
        with pytest.raises(docker.errors.NotFound):
            obj.reload()
    kept.reload()
    kept.remove()


def test_remove_labelled_refuses_to_remove_everything(docker_client):
    with pytest.raises(ValueError, match="at least one label"):
        engine.remove_labelled(docker_client)


def test_run_labels_are_unique_and_ours(run_label, test_labels):
    assert test_labels[engine.LABEL] == "1"
    assert test_labels["org.jupyter-faas.run"] == run_label
    assert len(run_label) > 8
