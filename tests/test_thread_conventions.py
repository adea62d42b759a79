"""The thread count follows the ecosystem's conventions: the CPU affinity mask, OMP_NUM_THREADS (as set by
joblib's loky workers), PYFASTNN_NUM_THREADS, threadpoolctl; a bad count never changes the state or breaks the
import.

Every child process gets an environment without PYFASTNN_* and OMP_NUM_THREADS, plus what the test sets.
"""

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _backend

HAS_CORE = pf.backends()["cpp"]["available"]
needs_core = pytest.mark.skipif(not HAS_CORE, reason="the compiled core is not built")
CPUS = _backend.usable_cpus()

# Prints the count, then any warning of the import as "WARNING <message>" lines.
SHOW = """
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import pyfastnn as pf
print(pf.get_num_threads())
for w in caught:
    print("WARNING", w.category.__name__, w.message)
"""


def _env(**env):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PYFASTNN_", "OMP_NUM_THREADS"))}
    full.update(env)
    return full


def _run(code, prefix=(), **env):
    r = subprocess.run([*prefix, sys.executable, "-c", textwrap.dedent(code)], env=_env(**env),
                       capture_output=True, text=True, timeout=120, check=False, cwd=tempfile.gettempdir())
    assert r.returncode == 0, r.stderr
    return r.stdout


def _count_and_warnings(code=SHOW, prefix=(), **env):
    lines = _run(code, prefix, **env).splitlines()
    return int(lines[0]), [line for line in lines[1:] if line.startswith("WARNING")]


# ---- the default ----------------------------------------------------------------------------------------


def test_default_is_the_usable_cpus():
    assert _count_and_warnings() == (min(CPUS, _backend.MAX_THREADS), [])


@pytest.mark.skipif(shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"),
                    reason="needs taskset and CPU affinity")
def test_taskset_one_cpu_gives_one_thread():
    cpu = min(os.sched_getaffinity(0))
    code = SHOW + "import os; print('cpus', len(os.sched_getaffinity(0)))"
    out = _run(code, prefix=("taskset", "-c", str(cpu))).splitlines()
    assert out[-1] == "cpus 1"  # taskset did restrict the child
    assert out[0] == "1"


@pytest.mark.parametrize("value", ["1", "1,1"])
def test_omp_num_threads_limits_the_default(value):
    assert _count_and_warnings(OMP_NUM_THREADS=value) == (1, [])


def test_omp_num_threads_above_the_cpus_does_not_oversubscribe():
    assert _count_and_warnings(OMP_NUM_THREADS="64") == (min(CPUS, 64), [])


@pytest.mark.skipif(CPUS < 2, reason="needs 2 usable CPUs")
def test_pyfastnn_num_threads_overrides_omp_num_threads():
    assert _count_and_warnings(OMP_NUM_THREADS="1", PYFASTNN_NUM_THREADS="2") == (2, [])
    assert _count_and_warnings(OMP_NUM_THREADS="2", PYFASTNN_NUM_THREADS="1") == (1, [])


@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_a_bad_omp_num_threads_is_ignored_with_a_warning(value):
    n, warned = _count_and_warnings(OMP_NUM_THREADS=value)
    assert n == min(CPUS, _backend.MAX_THREADS)
    assert len(warned) == 1 and "OMP_NUM_THREADS" in warned[0] and repr(value) in warned[0]


def test_a_bad_pyfastnn_num_threads_fails_the_import_naming_it():
    r = subprocess.run([sys.executable, "-c", "import pyfastnn"], env=_env(PYFASTNN_NUM_THREADS="0"),
                       capture_output=True, text=True, timeout=120, check=False, cwd=tempfile.gettempdir())
    assert r.returncode != 0 and "PYFASTNN_NUM_THREADS" in r.stderr and "'0'" in r.stderr


def test_pyfastnn_num_threads_above_the_maximum_warns_and_imports():
    n, warned = _count_and_warnings(PYFASTNN_NUM_THREADS="1000")
    assert n == min(CPUS, _backend.MAX_THREADS)
    assert len(warned) == 1 and "PYFASTNN_NUM_THREADS=1000" in warned[0] and "256" in warned[0]


# The import sees a machine with 300 CPUs (every way Python may ask).
MANY_CPUS = """
import os
os.cpu_count = lambda: 300
os.sched_getaffinity = lambda pid: set(range(300))
os.process_cpu_count = lambda: 300
""" + SHOW


def test_more_cpus_than_the_maximum_cap_with_a_warning():
    n, warned = _count_and_warnings(MANY_CPUS)
    assert n == 256
    assert len(warned) == 1 and "300 CPUs" in warned[0] and "PYFASTNN_NUM_THREADS" in warned[0]
    if HAS_CORE:
        assert _run(MANY_CPUS + "print(pf._core.get_num_threads())").splitlines()[-1] == "256"


def test_more_cpus_than_the_maximum_and_a_large_variable():
    n, warned = _count_and_warnings(MANY_CPUS, PYFASTNN_NUM_THREADS="1000")
    assert n == 256
    assert len(warned) == 1 and "PYFASTNN_NUM_THREADS=1000" in warned[0]
    n, warned = _count_and_warnings(MANY_CPUS, OMP_NUM_THREADS="1000")
    assert n == 256
    assert len(warned) == 1 and "300 CPUs" in warned[0]


# ---- set_num_threads --------------------------------------------------------------------------------------


@pytest.fixture
def restore_threads():
    n = pf.get_num_threads()
    yield n
    pf.set_num_threads(n)


@pytest.mark.parametrize("bad", [0, -1, 257, 1000])
def test_set_num_threads_out_of_range_changes_nothing(bad, restore_threads):
    pf.set_num_threads(1)
    with pytest.raises(ValueError, match=rf"between 1 and 256; got {bad}"):
        pf.set_num_threads(bad)
    assert pf.get_num_threads() == 1
    if HAS_CORE:
        assert pf._core.get_num_threads() == 1


@needs_core
def test_python_and_core_agree_on_the_maximum(restore_threads):
    pf._core.set_num_threads(_backend.MAX_THREADS)
    with pytest.raises(ValueError, match=str(_backend.MAX_THREADS)):
        pf._core.set_num_threads(_backend.MAX_THREADS + 1)


@needs_core
def test_the_exported_c_functions(restore_threads):
    lib = ctypes.CDLL(pf._core.__file__)
    assert lib.pyfastnn_set_num_threads(3) == 0
    assert lib.pyfastnn_get_num_threads() == 3 == pf.get_num_threads()
    assert lib.pyfastnn_set_num_threads(257) == -1 and lib.pyfastnn_set_num_threads(0) == -1
    assert pf.get_num_threads() == 3


def test_without_the_core_the_same_rules_hold():
    code = """
    import sys
    sys.modules["pyfastnn._core"] = None  # as if the extension were not built
    import pyfastnn as pf
    print(pf.backends()["cpp"]["available"], pf.get_num_threads())
    pf.set_num_threads(3)
    try:
        pf.set_num_threads(1000)
    except ValueError:
        print("refused", pf.get_num_threads())
    """
    assert _run(code, OMP_NUM_THREADS="1").splitlines() == ["False 1", "refused 3"]


# ---- threadpoolctl ----------------------------------------------------------------------------------------


def _pyfastnn_pools(threadpoolctl):
    return [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "pyfastnn"]


@needs_core
def test_threadpool_info_lists_the_pool(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    pf.set_num_threads(3)
    (info,) = _pyfastnn_pools(threadpoolctl)
    assert info["user_api"] == "pyfastnn" and info["num_threads"] == 3 and info["version"] == pf.__version__
    assert os.path.samefile(info["filepath"], pf._core.__file__)


@needs_core
@pytest.mark.parametrize("kwargs", [{"limits": 1}, {"limits": 1, "user_api": "pyfastnn"},
                                    {"limits": {"pyfastnn": 1}}])
def test_threadpool_limits_limits_and_restores(kwargs, restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    pf.set_num_threads(2)
    with threadpoolctl.threadpool_limits(**kwargs):
        assert pf.get_num_threads() == 1
        net = pf.MLP([4, 8, 2], seed=0)  # the kernels run under the limit
        assert net.predict(np.ones((16, 4), np.float32)).shape == (16, 2)
    assert pf.get_num_threads() == 2


@needs_core
def test_threadpool_limits_for_other_apis_leave_the_pool_alone(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    pf.set_num_threads(2)
    for api in ("blas", "openmp"):
        with threadpoolctl.threadpool_limits(limits=1, user_api=api):
            assert pf.get_num_threads() == 2


@needs_core
def test_threadpool_limits_above_the_maximum_clamp(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    pf.set_num_threads(2)
    with threadpoolctl.threadpool_limits(limits=10_000, user_api="pyfastnn"):
        assert pf.get_num_threads() == 256
    assert pf.get_num_threads() == 2


@needs_core
@pytest.mark.parametrize("threadpoolctl_first", [False, True])
def test_registration_without_importing_threadpoolctl(threadpoolctl_first):
    pytest.importorskip("threadpoolctl")
    code = f"""
    import sys
    if {threadpoolctl_first}:
        import threadpoolctl
    import pyfastnn as pf
    from pyfastnn import _threadpoolctl
    print("imported", "threadpoolctl" in sys.modules)
    import threadpoolctl
    print("finder", _threadpoolctl._finder in sys.meta_path)
    pf.set_num_threads(2)
    with threadpoolctl.threadpool_limits(1):
        print("limited", pf.get_num_threads())
    print("restored", pf.get_num_threads())
    print("pools", [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "pyfastnn"])
    """
    out = _run(code).splitlines()
    assert out == [f"imported {threadpoolctl_first}", "finder False", "limited 1", "restored 2", "pools [2]"]


def test_a_failed_registration_never_fails_the_import_of_threadpoolctl():
    pytest.importorskip("threadpoolctl")
    code = """
    import warnings
    import pyfastnn
    from pyfastnn import _threadpoolctl

    def broken(module):
        raise AttributeError("no LibController here")

    _threadpoolctl._register = broken
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import threadpoolctl
    print(threadpoolctl.threadpool_info() is not None, [str(w.message) for w in caught])
    """
    out = _run(code).strip()
    assert out.startswith("True [") and "could not register" in out and "no LibController here" in out


# ---- loky (joblib, as scikit-learn's n_jobs uses it) -------------------------------------------------------


def _threads_in_worker():
    import pyfastnn

    return pyfastnn.get_num_threads(), os.environ.get("OMP_NUM_THREADS"), _backend.usable_cpus()


def test_a_loky_worker_takes_its_share_of_the_cpus(monkeypatch):
    joblib = pytest.importorskip("joblib")
    from joblib.externals.loky import get_reusable_executor

    # Workers inherit this process's environment: only what loky sets may decide.
    for name in [k for k in os.environ if k.startswith("PYFASTNN_NUM_THREADS") or k == "OMP_NUM_THREADS"]:
        monkeypatch.delenv(name)
    get_reusable_executor().shutdown(wait=True)  # no worker started under another environment
    parallel = joblib.Parallel(n_jobs=2, backend="loky")
    results = parallel(joblib.delayed(_threads_in_worker)() for _ in range(2))
    for n, omp, cpus in results:
        assert omp is not None, "loky no longer sets OMP_NUM_THREADS in its workers"
        assert n == min(cpus, int(omp))
        if cpus == 2:  # this 2-CPU machine: one thread per worker, not two
            assert n == 1
