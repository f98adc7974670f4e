"""Functions run in worker processes like Lambda execution environments (local/workers.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from local.template import FunctionSpec
from local.workers import FunctionError, FunctionPool, WorkerError

SPEC = FunctionSpec("FixtureFunction", "tests/integration/lambda_fixture", "app.lambda_handler", 10, 128)


@pytest.fixture
def pool() -> Iterator[FunctionPool]:
    pool = FunctionPool(SPEC, {**os.environ, "FIXTURE_MARKER": "from-the-stack"}, size=2, log=lambda _: None)
    pool.start()
    pool.wait_ready()
    yield pool
    pool.stop()


def test_the_function_is_imported_once_and_stays_warm(pool: FunctionPool) -> None:
    # Given a started pool (the first worker imported the handler)
    # When it is invoked three times in a row
    results = [pool.invoke({}) for _ in range(3)]
    # Then one warm worker ran them all, with its module state kept, its own name and the given environment
    assert {r["pid"] for r in results} == {results[0]["pid"]} and results[0]["pid"] != os.getpid()
    assert [r["calls"] for r in results] == [1, 2, 3]
    assert results[0]["function_name"] == results[0]["env_name"] == "FixtureFunction"
    assert results[0]["marker"] == "from-the-stack"
    assert pool.describe()["cold_starts"] == 1


def test_concurrent_invocations_run_in_separate_workers(pool: FunctionPool) -> None:
    # Given two invocations at the same time
    started = time.monotonic()
    with ThreadPoolExecutor(2) as executor:
        results = list(executor.map(pool.invoke, [{"action": "sleep", "seconds": 1.0}] * 2))
    # Then they ran in parallel, in two workers whose module state is their own
    assert time.monotonic() - started < 1.9
    assert len({r["pid"] for r in results}) == 2
    assert sorted(r["calls"] for r in results) == [1, 1]
    # And the pool never goes over its size: a third concurrent invocation waits for a free worker
    with ThreadPoolExecutor(3) as executor:
        results = list(executor.map(pool.invoke, [{"action": "sleep", "seconds": 0.3}] * 3))
    assert pool.describe()["workers"] == 2 and len({r["pid"] for r in results}) == 2


def test_a_handler_exception_is_a_function_error_and_the_worker_stays(pool: FunctionPool) -> None:
    pid = pool.invoke({})["pid"]
    with pytest.raises(FunctionError) as raised:
        pool.invoke({"action": "raise"})
    assert raised.value.error_type == "ValueError"
    with pytest.raises(FunctionError) as raised:
        pool.invoke({"action": "unserialisable"})
    assert raised.value.error_type == "Runtime.MarshalError"
    assert pool.invoke({})["pid"] == pid


def test_a_worker_that_dies_is_replaced(pool: FunctionPool) -> None:
    pid = pool.invoke({})["pid"]
    with pytest.raises(WorkerError, match="died"):
        pool.invoke({"action": "exit"})
    again = pool.invoke({})
    assert again["pid"] != pid and again["calls"] == 1


def test_a_function_that_cannot_be_imported_fails_the_start() -> None:
    broken = FunctionPool(
        FunctionSpec("Broken", "tests/integration/lambda_fixture", "missing.lambda_handler", 3, 128),
        dict(os.environ),
        log=lambda _: None,
    )
    broken.start()
    with pytest.raises(WorkerError, match="failed to initialise"):
        broken.wait_ready()
    assert broken.describe()["state"] == "failed"
    with pytest.raises(WorkerError):
        broken.invoke({})
