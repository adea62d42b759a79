"""One network used from several threads at once: training is serialised, inference runs alongside it and sees
the weights of an epoch boundary, never a half-updated network or another call's buffers; and a process forked
while a thread trains (cpp) gets a working pyfastnn."""

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import pyfastnn as pf

ROWS = 512  # enough for the calls to overlap, few enough for the numpy backend to stay fast


@pytest.fixture(scope="module")
def digits():
    x, y = pf.datasets.load_digits()
    return np.ascontiguousarray(x[:ROWS]), np.ascontiguousarray(y[:ROWS])


@pytest.fixture(autouse=True)
def _switch_threads_often():
    """Hand the GIL over every few microseconds (instead of 5 ms) so that the threads' Python code interleaves
    finely: a race that needs an unlucky switch shows in every run."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def _run_together(*jobs, timeout=60):
    """Run the callables in threads released together, on this thread's backend (the choice of
    ``pf.use_backend`` is per thread); their results in order (re-raising the first error)."""
    start = threading.Barrier(len(jobs))
    results = [None] * len(jobs)
    errors = []
    backend = pf.get_backend()

    def run(i):
        start.wait()
        try:
            with pf.use_backend(backend):
                results[i] = jobs[i]()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def _fit(net, x, y, seed, **kwargs):
    return net.fit(x, y, optimizer=pf.SGD(lr=0.05), batch_size=32, epochs=30, seed=seed, progress=False,
                   **kwargs)


def _close(a, b):
    return np.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_two_fits_of_one_network_run_one_after_the_other(backend_name, digits):
    x, y = digits
    start = pf.MLP([64, 32, 10], seed=0)
    net = start.copy()
    got = _run_together(lambda: _fit(net, x, y, seed=1), lambda: _fit(net, x, y, seed=2))
    # Serialised, the two fits are the sequential runs in one of the two orders.
    for first, second in ((0, 1), (1, 0)):
        ref = start.copy()
        want = [None, None]
        want[first] = _fit(ref, x, y, seed=first + 1)
        want[second] = _fit(ref, x, y, seed=second + 1)
        if all(_close(g["loss"], w["loss"]) for g, w in zip(got, want)):
            break
    else:
        pytest.fail(f"the losses of the concurrent fits {[h['loss'] for h in got]} match neither sequential order")
    for a, b in zip(net.weights + net.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_predict_during_fit_sees_the_weights_of_an_epoch_boundary(backend_name, digits):
    x, y = digits
    net = pf.MLP([64, 32, 10], seed=0)
    probe = x[:32]  # the size of fit's batches, so a shared buffer would be shared
    states = [[p.copy() for p in net.weights + net.biases]]
    record = lambda epoch, logs: states.append([p.copy() for p in net.weights + net.biases])  # noqa: E731
    done = threading.Event()

    def train():
        try:
            return _fit(net, x, y, seed=0, callbacks=[record])
        finally:
            done.set()

    def infer():
        outputs = []
        while not done.is_set() or len(outputs) < 3:
            outputs.append(net.predict(probe))
        return outputs

    _, outputs = _run_together(train, infer)
    # What the network gives for the probe at the start and after each epoch, computed alone.
    expected = []
    for state in states:
        ref = net.copy()
        ref.weights, ref.biases = state[:ref.n_layers], state[ref.n_layers:]
        expected.append(ref.predict(probe))
    wrong = [i for i, out in enumerate(outputs) if not any(_close(out, e) for e in expected)]
    assert not wrong, f"{len(wrong)} of {len(outputs)} predictions match no epoch boundary of the fit"


def test_concurrent_train_steps_are_applied_one_at_a_time(backend_name, digits):
    x, y = digits
    start = pf.MLP([64, 32, 10], seed=0)
    net = start.copy()
    # 200 steps per thread, each thread on its own half of the rows.
    batches = [[(x[i:i + 32], y[i:i + 32]) for i in range(s, ROWS, 64)] * 25 for s in (0, 32)]

    def steps(k):
        opt = pf.SGD(lr=0.05)
        return [net.train_step(xb, yb, optimizer=opt) for xb, yb in batches[k]]

    losses = _run_together(lambda: steps(0), lambda: steps(1))
    ref = _replay(start.copy(), batches, losses, [0, 0])
    assert ref is not None, "no sequential order of the two threads' steps gives the losses they reported"
    for a, b in zip(net.weights + net.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _replay(net, batches, losses, pos):
    """The network after the two threads' steps replayed in an order that reproduces each step's reported loss
    (measured before its update, it tells whose step came next), or None if no order does. Depth-first: two
    different batches can report losses equal to within the tolerance, and then both orders are tried."""
    while pos != [len(b) for b in batches]:
        nxt = [k for k in (0, 1) if pos[k] < len(batches[k])
               and _close(net.loss(*batches[k][pos[k]]), losses[k][pos[k]])]
        if not nxt:
            return None
        for k in nxt[1:]:  # the rare tie: the other choice on a copy first
            branch = net.copy()
            branch.train_step(*batches[k][pos[k]], optimizer=pf.SGD(lr=0.05))
            done = _replay(branch, batches, losses, [p + (i == k) for i, p in enumerate(pos)])
            if done is not None:
                return done
        k = nxt[0]
        net.train_step(*batches[k][pos[k]], optimizer=pf.SGD(lr=0.05))
        pos[k] += 1
    return net


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_cpp_forks_safely_while_a_thread_fits(digits):
    # Only cpp: on numba and numpy, fork() while a thread is inside NumPy's bundled OpenBLAS can deadlock (a
    # limitation of OpenBLAS, documented in README.md with its work-arounds).
    if "cpp" not in [name for name, info in pf.backends().items() if info["available"]]:
        pytest.skip("the cpp backend is not built")
    x, y = digits
    net = pf.MLP([64, 128, 10], seed=0)
    stop = threading.Event()
    fitting = threading.Event()

    def train():
        with pf.use_backend("cpp"):
            while not stop.is_set():
                fitting.set()
                net.fit(x, y, epochs=2, progress=False)

    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        assert fitting.wait(30)
        time.sleep(0.05)  # well inside a fit
        pid = os.fork()
        if pid == 0:  # the child: train a network, use the one the parent was training, and leave at once
            code = 1
            try:
                with pf.use_backend("cpp"):
                    fresh = pf.MLP([64, 16, 10], seed=1)
                    fresh.fit(x, y, epochs=5, progress=False)
                    net.predict(x[:8])  # its locks were the parent's, perhaps held: the child has its own
                    net.train_step(x[:32], y[:32])
                    code = 0 if fresh.accuracy(x, y) > 0.5 else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 30
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if not done:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        assert done, "the child forked during fit hung"
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        stop.set()
        trainer.join(60)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_ctrl_c_while_inference_waits_for_an_epoch_does_not_block_training():
    # The main thread waits to read while a writer (an epoch) runs, and is interrupted there. A second writer
    # queued meanwhile must still get in after the first: the interrupted reader may not be counted as waiting.
    guard = pf.MLP([2, 2], seed=0)._guard()
    first_in, first_may_leave, second_in = threading.Event(), threading.Event(), threading.Event()

    def first_writer():
        with guard.writing():
            first_in.set()
            first_may_leave.wait(30)

    def second_writer():
        with guard.writing():
            second_in.set()

    main = threading.main_thread().ident
    threads = [threading.Thread(target=first_writer, daemon=True)]
    threads[0].start()
    assert first_in.wait(30)
    threads.append(threading.Thread(target=second_writer, daemon=True))
    threads[1].start()
    interrupter = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT))
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        guard.begin_read()
    first_may_leave.set()
    assert second_in.wait(10), "a writer waited for a reader that had been interrupted"
    for t in threads + [interrupter]:
        t.join(10)
    guard.begin_read()  # and reading works again
    guard.end_read()
