"""The wheel-building configuration stays true to the tree: cibuildwheel is not run by CI (it needs containers, a
Mac and Windows), so a renamed test file or check script would break its test commands unnoticed."""

import re
import sys
from pathlib import Path

import pytest

import pyfastnn

ROOT = Path(pyfastnn.__file__).parent.parent


def _cibuildwheel():
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("run from an installed package: no pyproject.toml beside it")
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    return tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["cibuildwheel"]


def test_cibuildwheel_test_commands_name_files_that_exist():
    config = _cibuildwheel()
    commands = {"all": config["test-command"]}
    commands.update({name: config[name]["test-command"] for name in ("linux", "macos", "windows")
                     if "test-command" in config.get(name, {})})
    for platform, lines in commands.items():
        paths = [p for line in lines for p in re.findall(r"\{project\}/(\S+)", line)]
        assert paths, f"{platform}: the test command runs nothing from the project"
        missing = [p for p in paths if not (ROOT / p).is_file()]
        assert not missing, f"{platform}: the test command names files that do not exist: {missing}"
        assert any("pyfastnn train" in line for line in lines), f"{platform}: the main job is not run"
