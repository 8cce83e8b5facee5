"""The warm container's App (`blueprint.app.get_app`) is rebuilt exactly when the function's configuration in
os.environ changes (a BLUEPRINT_* variable or the region set, changed, added or removed), and reused
otherwise, however the change was made (issue 18 made the unchanged case a quick look)."""

from __future__ import annotations

import os

import pytest

from blueprint import app as app_module
from emulator import Emulator
from tests.conftest import base_env


@pytest.fixture
def environ(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """os.environ holding the function's configuration; a fresh App cache."""
    for key in [k for k in os.environ if k.startswith(("BLUEPRINT_", "TENCENTCLOUD_"))]:
        monkeypatch.delenv(key)
    for key, value in base_env(emu, None).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(app_module, "_cache", {})
    return monkeypatch


def test_the_same_environment_gives_the_same_app(environ: pytest.MonkeyPatch) -> None:
    first = app_module.get_app()
    assert app_module.get_app() is first and app_module.get_app() is first


def test_a_variable_of_another_name_changes_nothing(environ: pytest.MonkeyPatch) -> None:
    first = app_module.get_app()
    environ.setenv("SOMETHING_ELSE", "1")
    assert app_module.get_app() is first
    environ.setenv("BLUEPRINT_KEEP", "3")  # the same count of variables as before: still seen
    environ.delenv("SOMETHING_ELSE")
    second = app_module.get_app()
    assert second is not first and second.settings.keep == 3


@pytest.mark.parametrize("change", ["set", "change", "remove", "region"])
def test_a_configuration_change_builds_a_new_app(environ: pytest.MonkeyPatch, change: str) -> None:
    environ.setenv("BLUEPRINT_KEEP", "2")
    first = app_module.get_app()
    if change == "set":
        environ.setenv("BLUEPRINT_CREATE_RATE", "5")
    elif change == "change":
        environ.setenv("BLUEPRINT_KEEP", "4")
    elif change == "remove":
        environ.delenv("BLUEPRINT_KEEP")
    else:
        environ.setenv("TENCENTCLOUD_REGION", "ap-shanghai")
    second = app_module.get_app()
    assert second is not first
    assert app_module.get_app() is second  # and then reused
    expected = {"set": ("create_rate", 5.0), "change": ("keep", 4), "region": ("region", "ap-shanghai")}
    if change in expected:
        name, value = expected[change]
        assert getattr(second.settings, name) == value


def test_the_same_value_set_again_keeps_the_app(environ: pytest.MonkeyPatch) -> None:
    first = app_module.get_app()
    environ.setenv("BLUEPRINT_DATA_DISKS", "none")  # a new object with the same text: compared, not rebuilt
    assert app_module.get_app() is first
    assert app_module.get_app() is first


def test_a_mapping_other_than_os_environ_is_compared_every_time(environ: pytest.MonkeyPatch) -> None:
    env = dict(os.environ)
    first = app_module.get_app(env)
    assert app_module.get_app(dict(env)) is first
    env["BLUEPRINT_KEEP"] = "6"
    assert app_module.get_app(env).settings.keep == 6
