"""gc_paused: counted, so overlapping pauses and an application's own gc.disable() are respected."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from nightbatch.gcpause import gc_paused


@pytest.fixture(autouse=True)
def _collector_enabled_after() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()


def test_the_collector_is_off_inside_and_back_on_after():
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_it_comes_back_on_after_an_exception():
    gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("ingest failed")
    assert gc.isenabled()


def test_overlapping_pauses_end_when_the_last_one_does():
    gc.enable()
    first, second = gc_paused(), gc_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second pauser is still at work
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_the_application_disabled_stays_disabled():
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_pauses_from_many_threads_leave_it_as_it_was():
    gc.enable()
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(200):
            with gc_paused():
                pass

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gc.isenabled()
