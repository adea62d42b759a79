"""Threads: concurrent training from Python threads, a forked child, and thread counts that give one answer."""

import os
import threading

import numpy as np
import pytest

import pyfastnn as pf


def _data(n=400, d=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)


def _train(x, y, batch, seed=0):
    net = pf.MLP([x.shape[1], 257, 3], seed=seed)
    lr = 0.01 if batch > 1 else 0.001  # per-sample SGD with momentum diverges at 0.01 (loss 8e3, then 2e8)
    optimizer = pf.SGD(lr=lr, momentum=0.9)
    net.fit(x, y, optimizer=optimizer, batch_size=batch, epochs=2, seed=seed, progress=False)
    return net


@pytest.mark.parametrize("batch", [1, 64])
def test_two_python_threads_training_at_once_match_sequential_runs(batch):
    x, y = _data()
    expected = [_train(x, y, batch, seed) for seed in (1, 2)]
    results = [None, None]
    errors = []

    def work(i):
        try:
            results[i] = _train(x, y, batch, seed=i + 1)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and all(r is not None for r in results)
    for got, want in zip(results, expected):
        for a, b in zip(got.weights, want.weights):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_trains_normally():
    x, y = _data(200)
    _train(x, y, 64)  # the parent's pool is warm before the fork
    pid = os.fork()
    if pid == 0:  # the child: train, check, and leave without running pytest's teardown
        code = 1
        try:
            net = _train(x, y, 64)
            code = 0 if net.accuracy(x, y) > 0.5 and all(np.isfinite(w).all() for w in net.weights) else 2
        finally:
            os._exit(code)
    deadline_ok = False
    for _ in range(600):  # up to 60 s
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            deadline_ok = True
            break
        threading.Event().wait(0.1)
    if not deadline_ok:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert deadline_ok, "the forked child hung"
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_thread_count_does_not_change_the_answer():
    x, y = _data(256)
    previous = pf.get_num_threads()
    try:
        nets = []
        for n in (1, 2):
            pf.set_num_threads(n)
            nets.append(_train(x, y, 128))
    finally:
        pf.set_num_threads(previous)
    for a, b in zip(nets[0].weights, nets[1].weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
