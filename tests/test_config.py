"""Settings reach every part: Jupyter config files, %config in a notebook, environment variables."""

from __future__ import annotations

import re

import pytest
from IPython.testing import globalipapp

from jupyter_faas.builders.docker import DockerBuilder
from jupyter_faas.config import load_jupyter_config
from jupyter_faas.deployers.openwhisk_rest import OpenWhiskClient
from jupyter_faas.errors import ConfigError
from jupyter_faas.image import FaaSImages
from jupyter_faas.magics import FaaSMagics
from jupyter_faas.registry import FaaSRegistry
from jupyter_faas.site import FaaSSite
from jupyter_faas.workspace import FaaSWorkspace


@pytest.fixture(scope="module")
def shell():
    ip = globalipapp.start_ipython() or globalipapp.get_ipython()  # one shell per process
    ip.run_line_magic("load_ext", "jupyter_faas")
    return ip


def _magics(shell) -> FaaSMagics:
    return next(c for c in shell.configurables if isinstance(c, FaaSMagics))


def test_percent_config_reaches_nested_parts(shell):
    shell.run_line_magic("config", 'FaaSRegistry.url = "registry.example.org:5443"')
    shell.run_line_magic("config", 'FaaSSite.pip_index_url = "https://pypi.example.org/simple"')
    shell.run_line_magic("config", 'FaaSWorkspace.bundle_dir = "/tmp/faas-functions"')
    workspace = _magics(shell).workspace
    assert workspace.builder.registry.url == "registry.example.org:5443"
    assert workspace.builder.site.pip_index_url == "https://pypi.example.org/simple"
    assert workspace.bundle_dir == "/tmp/faas-functions"


def test_jupyter_config_file_is_read(tmp_path, monkeypatch):
    (tmp_path / "jupyter_faas_config.py").write_text(
        'c.FaaSImages.base_image = "python:3.11-slim"\nc.FaaSRegistry.namespace = "sfx"\n'
    )
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path))
    config = load_jupyter_config()
    builder = DockerBuilder(config=config)
    assert builder.images.base_image == "python:3.11-slim"
    assert builder.registry.namespace == "sfx"


def test_environment_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("FAAS_REGISTRY", "127.0.0.1:5999")
    monkeypatch.setenv("FAAS_BASE_IMAGE", "example/base:1")
    monkeypatch.setenv("FAAS_BUNDLE_DIR", str(tmp_path))
    monkeypatch.setenv("__OW_API_HOST", "http://127.0.0.1:4000")
    monkeypatch.setenv("__OW_API_KEY", "u:k")
    assert FaaSRegistry().url == "127.0.0.1:5999"
    assert FaaSImages().base_image == "example/base:1"
    assert FaaSWorkspace().bundle_dir == str(tmp_path)
    assert (OpenWhiskClient().api_host, OpenWhiskClient().auth) == ("http://127.0.0.1:4000", "u:k")


@pytest.mark.parametrize(
    ("cls", "trait", "value", "words"),
    [
        (FaaSSite, "ca_bundle", "/nonexistent/ca.pem", "is not a file"),
        (FaaSRegistry, "url", "registry.example.org/path", "host[:port] only"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(cls, trait, value, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        cls(**{trait: value})


def test_every_setting_has_help():
    for cls in (
        FaaSMagics,
        FaaSWorkspace,
        DockerBuilder,
        FaaSImages,
        FaaSRegistry,
        FaaSSite,
        OpenWhiskClient,
    ):
        for name, trait in cls.class_traits(config=True).items():
            assert trait.help.strip(), f"{cls.__name__}.{name} has no help text"


def test_swappable_classes_are_chosen_by_entry_point_name_or_path():
    from traitlets import TraitError

    from jupyter_faas.server.app import FunctionServer
    from jupyter_faas.server.pool.docker import DockerInvoker

    assert FaaSWorkspace(builder_class="docker").builder_class is DockerBuilder
    assert (
        FaaSWorkspace(builder_class="jupyter_faas.builders.docker.DockerBuilder").builder_class
        is DockerBuilder
    )
    assert FunctionServer(invoker_class="docker").invoker_class is DockerInvoker
    help_text = FaaSWorkspace.class_get_trait_help(FaaSWorkspace.class_traits()["builder_class"])
    assert '"docker" (jupyter_faas.builders.docker.DockerBuilder)' in help_text
    with pytest.raises(
        TraitError, match="neither an installed jupyter_faas.builders entry point .docker."
    ):
        FaaSWorkspace(builder_class="kaniko")


def test_ca_bundle_falls_back_to_the_host_trust_store(monkeypatch):
    """Without any CA variable the host's own trust store goes into builds (it holds a site CA
    wherever the host trusts one)."""
    for var in ("FAAS_CA_BUNDLE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(var, raising=False)
    path = FaaSSite().ca_bundle
    assert path and open(path).read().count("BEGIN CERTIFICATE") > 10


def test_faas_backend_picks_builder_and_invoker_with_one_setting(monkeypatch):
    from jupyter_faas.server.app import FunctionServer
    from jupyter_faas.server.pool.docker import DockerInvoker

    monkeypatch.setenv("FAAS_BACKEND", "docker")
    assert FaaSWorkspace().builder_class is DockerBuilder
    assert FunctionServer().invoker_class is DockerInvoker
    monkeypatch.delenv("FAAS_BACKEND")
    assert FaaSWorkspace().builder_class == "auto"
    assert FunctionServer().invoker_class == "auto"


def test_deployer_is_chosen_by_entry_point_name():
    from jupyter_faas.deployers.openwhisk import OpenWhiskDeployer

    workspace = FaaSWorkspace(deployer_class="openwhisk")
    assert isinstance(workspace.deployer, OpenWhiskDeployer)
    with pytest.raises(Exception, match="neither an installed jupyter_faas.deployers entry point"):
        FaaSWorkspace(deployer_class="lambda")


@pytest.mark.parametrize(
    ("module", "base", "methods"),
    [
        ("jupyter_faas.builders", "FaaSBuilder", "build, test, push, published"),
        ("jupyter_faas.deployers", "FaaSDeployer", "deploy, invoke, activation, activations"),
        ("jupyter_faas.server.pool", "FaaSInvoker", "start, stop, run"),
    ],
)
def test_interfaces_refuse_an_incomplete_implementation_when_it_is_defined(module, base, methods):
    import importlib

    interface = getattr(importlib.import_module(module), base)
    with pytest.raises(TypeError, match=f"Half must implement {methods}"):
        type("Half", (interface,), {})


def test_auto_picks_the_container_less_builder_with_a_one_line_notice(monkeypatch, tmp_path):
    from jupyter_faas.builders.process import ProcessBuilder

    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    monkeypatch.setenv("FAAS_ENV_DIR", str(tmp_path))
    monkeypatch.delenv("FAAS_BACKEND", raising=False)
    workspace = FaaSWorkspace()
    assert isinstance(workspace.builder, ProcessBuilder)
    notice = workspace.notice
    assert "\n" not in notice
    assert notice.startswith("No Docker engine answers at tcp://127.0.0.1:9; container-less mode")
    assert "no isolation beyond a process" in notice
