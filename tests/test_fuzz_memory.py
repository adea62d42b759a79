"""Sizes beyond the memory there is (issue #13's fuzzing suite, "huge sizes under a memory limit"): in a child
process whose address space is capped, every call that cannot get its memory raises MemoryError with a message
— never a crash, another exception or a changed network — and the network still works afterwards."""

import json
import sys

import pytest

from conftest import _available

CHILD = """
import json, resource
limit = 3 << 30  # 3 GiB of address space: far below what the calls ask for, far above what the rest needs
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import numpy as np
import pyfastnn as pf


def outcome(call):
    try:
        call()
        return "returned"
    except Exception as exc:  # the test names what it expects
        return type(exc).__name__ + ("" if str(exc) else " without a message")


net = pf.MLP([64, 4096, 10], seed=0)
before = [a.copy() for a in net.weights + net.biases]
zeros = lambda *shape: np.zeros(shape, np.float32)
results = {
    "MLP of 1e10 weights": outcome(lambda: pf.MLP([100_000, 100_000])),
    "predict on 1e6 rows": outcome(lambda: net.predict(zeros(1_000_000, 64))),
    "full-batch fit on 2e5 rows": outcome(
        lambda: net.fit(zeros(200_000, 64), np.zeros(200_000, int), batch_size=None, epochs=1, progress=False)),
    "gemm into 60000 x 60000": outcome(lambda: pf.gemm(zeros(60_000, 1), zeros(1, 60_000))),
}
print(json.dumps({
    "backend": pf.get_backend(),
    "results": results,
    "unchanged": all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases, before)),
    "still works": bool(np.isfinite(net.predict(zeros(8, 64))).all()),
}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs malloc to honour RLIMIT_AS (Linux)")
@pytest.mark.parametrize("backend", _available())
def test_calls_beyond_the_memory_limit_raise_memory_error(run_python, backend):
    result = run_python(CHILD, timeout=300, PYFASTNN_BACKEND=backend)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == backend
    assert set(report["results"].values()) == {"MemoryError"}, report["results"]
    assert report["unchanged"] and report["still works"], report
