"""The soak run's checker (tests/soak.py runs on demand; here: that it sees a leak when there is one)."""

import importlib.util
import os
import threading
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("soak", Path(__file__).with_name("soak.py"))
soak = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(soak)


def test_a_step_that_keeps_nothing_passes(capsys):
    assert soak._phase("nothing", lambda i: bytearray(1 << 16), 2, 20)
    assert capsys.readouterr().out.startswith("ok")


def test_growing_memory_fails(capsys):
    kept = []
    # 20 steps of 1 % of the process's resident memory (at least 4 MiB), touched: 20 %, four times the 5 % limit
    # however large the process has grown (in a full test run it holds much more than a fresh interpreter).
    step = max(4 << 20, soak._rss_bytes() // 100)
    assert not soak._phase("leak", lambda i: kept.append(b"\x01" * step), 1, 20)
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.skipif(soak._open_fds() < 0, reason="no /proc/self/fd or /dev/fd here")
def test_a_file_left_open_fails(tmp_path, capsys):
    handles = []
    try:
        assert not soak._phase("files", lambda i: handles.append(open(os.devnull)), 1, 3)
        assert "open files" in capsys.readouterr().out
    finally:
        for h in handles:
            h.close()


def test_a_thread_left_running_fails(capsys):
    stop = threading.Event()
    threads = []

    def start(i):
        t = threading.Thread(target=stop.wait, daemon=True)
        t.start()
        threads.append(t)

    try:
        assert not soak._phase("threads", start, 1, 2)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
