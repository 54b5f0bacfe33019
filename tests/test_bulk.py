from __future__ import annotations

import gc

import pytest

from wbtool.bulk import gc_paused, paused_gc


@pytest.fixture(autouse=True)
def _collector_on() -> None:
    gc.enable()


def test_the_collector_is_paused_inside_and_on_again_after() -> None:
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():  # nested: the inner block must not turn it back on
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_when_the_work_fails() -> None:
    @gc_paused
    def work(x: int) -> int:
        assert not gc.isenabled()
        raise ValueError(x)

    with pytest.raises(ValueError):
        work(1)
    assert gc.isenabled()
    assert work.__name__ == "work"
