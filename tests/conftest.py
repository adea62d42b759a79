"""Run the whole suite on one backend, chosen by PYFASTNN_BACKEND (cpp, numba or numpy; default: the first
available of cpp → numba → numpy), e.g.::

    PYFASTNN_BACKEND=numba python -m pytest tests -q

pyfastnn reads the variable at import (naming an unavailable backend fails the import, so a missing build cannot
hide behind a fallback). Here, for the session, the chosen backend is checked, announced in the report header,
warmed up (Numba compiles its kernels once, before the first test), and restored after every test, so a test that
switches backends cannot leak its choice into the tests after it.

Tests that want every backend whatever the session's, parametrize explicitly with the ``backend_name`` fixture.
"""

import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _backend


def _requested():
    return os.environ.get("PYFASTNN_BACKEND", "").strip()


def _available():
    return [name for name, info in pf.backends().items() if info["available"]]


def pytest_report_header(config):
    info = pf.backends()
    unavailable = "; ".join(f"{name}: {i['reason']}" for name, i in info.items() if not i["available"])
    return [
        f"pyfastnn {pf.__version__} from {os.path.dirname(pf.__file__)}",
        f"pyfastnn backend: {pf.get_backend()} (PYFASTNN_BACKEND={_requested() or 'unset'}); "
        f"available: {', '.join(_available())}" + (f"; unavailable: {unavailable}" if unavailable else ""),
    ] + ([f"load_csv engine: {os.environ['PYFASTNN_TEST_CSV_ENGINE']}"]
         if os.environ.get("PYFASTNN_TEST_CSV_ENGINE") else [])


@pytest.fixture(scope="session", autouse=True)
def session_backend():
    """The backend every test runs on unless it chooses another: PYFASTNN_BACKEND's, else the default."""
    requested = _requested()
    name = pf.get_backend()
    if requested and name != requested:
        pytest.fail(f"PYFASTNN_BACKEND={requested!r} but pyfastnn runs on {name!r}", pytrace=False)
    if name == "numba":
        # Compile (or load from Numba's cache) once, so no test is charged the JIT time.
        from pyfastnn import _numba

        _numba.compile_all()
    return name


@pytest.fixture(scope="session", autouse=True)
def session_csv_engine():
    """PYFASTNN_TEST_CSV_ENGINE=pyarrow|pandas|numpy: pf.datasets.load_csv's engine="auto" means that one for
    the session, so the CSV tests run on each engine (.ci/run); naming one not installed fails."""
    from pyfastnn import _tabular

    name = os.environ.get("PYFASTNN_TEST_CSV_ENGINE", "").strip() or None
    if name is not None:
        _tabular.pick(name, ",")  # ValueError / ImportError for an unknown or missing engine
    _tabular.auto_engine = name
    return name


@pytest.fixture(autouse=True)
def _restore_session_backend(session_backend):
    yield
    # set_backend in a test (or a use_backend left open by a failure) must not change the next tests' backend.
    _backend._state["name"] = session_backend
    _backend._local.name = None


def _core_isas():
    """The ISA levels the compiled core can run on this machine; none without the core."""
    try:
        from pyfastnn import _core
    except ImportError:
        return []
    return list(_core.cpu_info()["isa_supported"])


@pytest.fixture(params=_core_isas())
def isa(request):
    """Each ISA level of the compiled core in turn, active for the test's duration (the level found is restored)."""
    from pyfastnn import _core

    before = _core.get_isa()
    _core.set_isa(request.param)
    yield request.param
    _core.set_isa(before)


@pytest.fixture(params=_available())
def backend_name(request):
    """Each available backend in turn, active (``pf.use_backend``) for the test's duration."""
    with pf.use_backend(request.param):
        yield request.param


def _run_python(code, *, clear=("PYFASTNN_",), timeout=60, **env):
    """Run ``code`` in a fresh interpreter with the environment minus variables starting with ``clear``, plus
    ``env``. It runs outside the source tree, so the child imports the installed package as the tests do."""
    full = {k: v for k, v in os.environ.items() if not (clear and k.startswith(clear))}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=full, capture_output=True, text=True, timeout=timeout,
        check=False, cwd=tempfile.gettempdir(),
    )


@pytest.fixture
def run_python():
    """``run_python(code, clear=("PYFASTNN_",), timeout=60, **env)`` → CompletedProcess (see _run_python)."""
    return _run_python


def pytest_terminal_summary(terminalreporter):
    # The fuzzing suites' calls by outcome (tests/_fuzz.py), when they ran.
    fuzz = sys.modules.get("_fuzz")
    if fuzz is None or not fuzz.OUTCOMES:
        return
    terminalreporter.section(f"fuzzed calls by outcome (hypothesis profile {fuzz.PROFILE!r})")
    for (what, kind), count in sorted(fuzz.OUTCOMES.items()):
        terminalreporter.write_line(f"{what:<28} {kind:<20} {count:>7}")
    terminalreporter.write_line(f"{'total':<49} {sum(fuzz.OUTCOMES.values()):>7}")


# The kernel tests' comparison (test_kernels.py, test_sparse.py): the hidden activations every kernel takes, and
# the largest error relative to the reference's largest magnitude each dtype may show.
ACTS = ["step", "sign", "linear", "piecewise_linear", "sigmoid", "tanh", "relu"]
TOL = {np.float64: 1e-12, np.float32: 1e-5}


def close(got, want, dtype, factor=1.0):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = max(np.max(np.abs(want)) if want.size else 0.0, 1e-30)
    err = np.max(np.abs(got - want)) / scale if want.size else 0.0
    assert err <= TOL[dtype] * factor, f"relative error {err:.3g} > {TOL[dtype] * factor:.3g}"
