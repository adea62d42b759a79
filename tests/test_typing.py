"""The typed API: the stub of the compiled core matches what it exports, the package ships its type markers, and
the modules declared fully annotated pass mypy."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import pyfastnn

PACKAGE = Path(pyfastnn.__file__).parent
ROOT = PACKAGE.parent
STUB = PACKAGE / "_core.pyi"


def _stub_functions():
    """{name: [(parameter, has_default)]} of the functions in _core.pyi, plus the annotated module attributes."""
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    functions, attributes = {}, set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            args = node.args.args
            defaults = [False] * (len(args) - len(node.args.defaults)) + [True] * len(node.args.defaults)
            functions[node.name] = [(a.arg, d) for a, d in zip(args, defaults)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            attributes.add(node.target.id)
    return functions, attributes


def _runtime_parameters(fn):
    """[(parameter, has_default)] from a pybind11 docstring, whose first line is a Python signature."""
    first = fn.__doc__.lstrip().split("\n", 1)[0]
    node = ast.parse(f"def {first}: ...").body[0]
    args = node.args.args
    return [(a.arg, i >= len(args) - len(node.args.defaults)) for i, a in enumerate(args)]


@pytest.fixture(scope="module")
def core():
    if importlib.util.find_spec("pyfastnn._core") is None:
        pytest.skip("the compiled core is not built")
    from pyfastnn import _core

    return _core


def test_stub_names_exactly_what_core_exports(core):
    functions, attributes = _stub_functions()
    classes = {node.name for node in ast.parse(STUB.read_text(encoding="utf-8")).body
               if isinstance(node, ast.ClassDef)}
    exported = {n for n in dir(core) if not (n.startswith("__") and n.endswith("__"))}
    assert set(functions) | classes == {n for n in exported if callable(getattr(core, n))}
    assert all(isinstance(getattr(core, n), type) for n in classes)
    assert attributes == {"__version__"} and isinstance(core.__version__, str)


def test_stub_parameters_match_the_bindings(core):
    functions, _ = _stub_functions()
    for name, params in functions.items():
        assert params == _runtime_parameters(getattr(core, name)), name


def test_runtime_signature_parser_reads_a_pybind11_line():
    # The parser above must see through pybind11's annotations, or the test before it would compare nothing.
    def f():
        pass

    f.__doc__ = "f(a: numpy.ndarray, n: typing.SupportsInt | typing.SupportsIndex, sw: object = None) -> float\n"
    assert _runtime_parameters(f) == [("a", False), ("n", False), ("sw", True)]


def test_package_ships_its_type_markers():
    assert (PACKAGE / "py.typed").is_file()
    assert STUB.is_file()


def test_pyproject_installs_the_type_markers():
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python >= 3.11")
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not running from the source tree")
    package_data = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    assert {"py.typed", "*.pyi"} <= set(package_data["pyfastnn"])


def test_annotated_modules_pass_mypy():
    pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy)")
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("not running from the source tree")
    # The files and the strictness come from [tool.mypy] in pyproject.toml.
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
