"""Items that fail: retried, failed for good, fatal, in a chain of adapters,
or past their step's timeout."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any
from uuid import UUID

import pytest
from engine_driver import Engine, by_correlation, only, with_status

from stageline import Fatal, Pipeline, StepContext
from stageline.adapters.registry import adapter_name
from stageline.domain.status import ExecutionStatus, StageStatus, StepStatus
from stageline.store.records import LineageRecord

FAST = {"initial": 0.01, "maximum": 0.05}
WORDS = ["alpha", "beta", "gamma", "delta"]


def split(words: list[str]) -> list[str]:
    return words


def gather(words: list[str]) -> str:
    return " ".join(words)


def _entries_of(engine: Engine, execution_id: UUID, item_key: str) -> list[LineageRecord]:
    return sorted((e for e in engine.lineage(execution_id) if e.item_key == item_key
                   and e.route_id == "shout"), key=lambda e: e.attempt)


class Flaky:
    """Fails an item's first `failures` attempts, then succeeds."""

    def __init__(self, failures: dict[str, int], error: type[Exception] = RuntimeError) -> None:
        self.failures = failures
        self.error = error
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def shout(self, word: str) -> str:
        with self._lock:
            self.calls[word] += 1
            attempt = self.calls[word]
        if attempt <= self.failures.get(word, 0):
            raise self.error(f"{word} broke on attempt {attempt}")
        return word.upper()


def shouting(flaky: Flaky, *, retries: int, collect: bool = False) -> Pipeline:
    p = Pipeline("shouting")
    p.step(output="words", fan_out=True)(split)
    p.add_step("shout", output="loud", adapters=[flaky.shout], retries=retries, backoff=FAST)
    if collect:
        p.step(output="sentence", collect=True)(gather)
    return p


def test_an_item_that_fails_then_succeeds_keeps_both_attempts(engine: Engine) -> None:
    flaky = Flaky({"beta": 1})
    engine.install(shouting(flaky, retries=2))
    execution = engine.start("shouting", WORDS)

    record = engine.drain(execution.id)

    assert record.status == ExecutionStatus.COMPLETED
    assert record.retry_count == 1
    assert engine.values(record.id, "loud") == [w.upper() for w in WORDS]
    failed, done = _entries_of(engine, record.id, "0/00001")
    assert (failed.attempt, failed.stage_status) == (1, StageStatus.FAILED)
    assert (done.attempt, done.stage_status) == (2, StageStatus.COMPLETED)
    assert failed.correlation_id == done.correlation_id
    info = failed.error_info
    assert info is not None
    assert info["type"] == "RuntimeError"
    assert info["message"] == "beta broke on attempt 1"
    assert "Traceback" in info["traceback"] and "beta broke on attempt 1" in info["traceback"]
    assert info["adapter_name"] == adapter_name(flaky.shout)
    assert info["will_retry"] is True
    assert done.error_info is None
    assert engine.steps(record.id)["shout"].attempts == len(WORDS) + 1


def test_an_item_failing_for_good_without_collect_completes_with_errors(
        engine: Engine) -> None:
    flaky = Flaky({"gamma": 99})
    engine.install(shouting(flaky, retries=2))
    execution = engine.start("shouting", WORDS)

    record = engine.drain(execution.id)

    assert record.status == ExecutionStatus.COMPLETED_WITH_ERRORS
    assert flaky.calls["gamma"] == 3  # one attempt and two retries
    assert record.retry_count == 2
    # The other items' outputs are kept.
    assert [i.key for i in engine.items(record.id, "loud")] == ["0/00000", "0/00001", "0/00003"]
    assert engine.values(record.id, "loud") == ["ALPHA", "BETA", "DELTA"]
    shout = engine.steps(record.id)["shout"]
    assert (shout.status, shout.completed, shout.failed) == (StepStatus.FAILED, 3, 1)
    assert shout.error_message == "1 of 4 items failed"
    attempts = _entries_of(engine, record.id, "0/00002")
    assert [(e.attempt, e.stage_status) for e in attempts] == [
        (1, StageStatus.FAILED), (2, StageStatus.FAILED), (3, StageStatus.FAILED)]
    assert attempts[-1].error_info is not None
    assert attempts[-1].error_info["will_retry"] is False


def test_an_item_failing_for_good_cancels_the_collect_downstream(engine: Engine) -> None:
    flaky = Flaky({"gamma": 99})
    engine.install(shouting(flaky, retries=1, collect=True))
    execution = engine.start("shouting", WORDS)

    record = engine.drain(execution.id)

    assert record.status == ExecutionStatus.FAILED
    steps = engine.steps(record.id)
    assert steps["shout"].status == StepStatus.FAILED
    assert steps["gather"].status == StepStatus.CANCELLED
    assert steps["gather"].error_message == "not run: input stage has failed items"
    assert engine.items(record.id, "sentence") == []
    assert record.error is not None and "1 of 4 items failed" in record.error
    assert len(engine.items(record.id, "loud")) == 3


def test_fatal_is_not_retried(engine: Engine) -> None:
    flaky = Flaky({"delta": 99}, error=Fatal)
    engine.install(shouting(flaky, retries=5))
    execution = engine.start("shouting", WORDS)

    record = engine.drain(execution.id)

    assert record.status == ExecutionStatus.COMPLETED_WITH_ERRORS
    assert flaky.calls["delta"] == 1
    assert record.retry_count == 0
    entry = only(_entries_of(engine, record.id, "0/00003"))
    assert entry.stage_status == StageStatus.FAILED
    assert entry.error_info is not None
    assert (entry.error_info["type"], entry.error_info["will_retry"]) == ("Fatal", False)


def clean(text: str) -> str:
    return text.strip()


def embed(text: str) -> list[int]:
    if text == "poison":
        raise ValueError("cannot embed poison")
    return [len(text), ord(text[0])]


def tag(vector: list[int]) -> dict[str, Any]:
    return {"vector": vector}


def test_the_failing_adapter_of_a_chain_is_named(engine: Engine) -> None:
    p = Pipeline("chained")
    p.step(output="texts", fan_out=True)(split)
    p.step(output="vectors", adapters=[clean, embed])(tag)
    engine.install(p)
    execution = engine.start("chained", [" ab ", "poison", "c"])

    record = engine.drain(execution.id)

    assert record.status == ExecutionStatus.COMPLETED_WITH_ERRORS
    assert engine.values(record.id, "vectors") == [
        {"vector": [2, ord("a")]}, {"vector": [1, ord("c")]}]
    entries = [e for e in engine.lineage(record.id) if e.route_id == "tag"]
    failed = only(with_status(entries, StageStatus.FAILED))
    assert (failed.adapter_name, failed.adapter_index) == (adapter_name(embed), 1)
    assert failed.error_info is not None
    assert failed.error_info["adapter_name"] == adapter_name(embed)
    assert failed.error_info["adapter_index"] == 1
    assert failed.error_info["type"] == "ValueError"
    done = with_status(entries, StageStatus.COMPLETED)
    assert len(done) == 2
    assert {(e.adapter_name, e.adapter_index) for e in done} == {(adapter_name(tag), 2)}


def test_a_handler_past_its_timeout_fails_with_timeout_error(engine: Engine) -> None:
    release = threading.Event()

    def slow(word: str) -> str:
        if word == "slow":
            release.wait(10)
        return word

    p = Pipeline("timed")
    p.step(output="words", fan_out=True)(split)
    p.step(output="done", timeout=0.2)(slow)
    engine.install(p)
    execution = engine.start("timed", ["quick", "slow"])
    try:
        record = engine.drain(execution.id)
    finally:
        release.set()

    assert record.status == ExecutionStatus.COMPLETED_WITH_ERRORS
    assert engine.values(record.id, "done") == ["quick"]
    failed = only([e for e in engine.lineage(record.id)
                   if e.stage_status == StageStatus.FAILED])
    assert failed.item_key == "0/00001"
    assert failed.error_info is not None
    assert failed.error_info["type"] == "TimeoutError"
    assert "0.2 s" in failed.error_info["message"]
    assert failed.duration_ms is not None and failed.duration_ms >= 200


def test_a_handler_taking_a_context_gets_its_attempt(engine: Engine) -> None:
    seen: list[StepContext] = []
    lock = threading.Lock()

    def probe(word: str, ctx: StepContext) -> str:
        with lock:
            seen.append(ctx)
        if word == "again" and ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return f"{word}@{ctx.attempt}"

    p = Pipeline("probing")
    p.step(output="words", fan_out=True)(split)
    p.step(output="probed", retries=1, backoff=FAST)(probe)
    engine.install(p)
    execution = engine.start("probing", ["once", "again"])

    record = engine.drain(execution.id)

    assert record.status == ExecutionStatus.COMPLETED
    assert engine.values(record.id, "probed") == ["once@1", "again@2"]
    produced = {i.key: i.correlation_id for i in engine.items(record.id, "probed")}
    lineage = by_correlation(engine.lineage(record.id))
    assert sorted((c.item_key, c.attempt) for c in seen) == [
        ("0/00000", 1), ("0/00001", 1), ("0/00001", 2)]
    for ctx in seen:
        assert ctx.execution_id == record.id
        assert (ctx.step, ctx.adapter_name, ctx.adapter_index) == (
            "probe", f"{probe.__module__}:probing.probe.probe", 0)
        assert ctx.item_key is not None
        assert ctx.correlation_id == produced[ctx.item_key]
        attempts = {e.attempt: e for e in lineage[ctx.correlation_id]}
        assert attempts[ctx.attempt].route_id == "probe"


@pytest.mark.parametrize("retries", [0, 3])
def test_retry_count_counts_retries_only(engine: Engine, retries: int) -> None:
    flaky = Flaky({"alpha": 1, "beta": 1})
    engine.install(shouting(flaky, retries=retries))
    execution = engine.start("shouting", WORDS)

    record = engine.drain(execution.id)

    expected = ExecutionStatus.COMPLETED if retries else ExecutionStatus.COMPLETED_WITH_ERRORS
    assert record.status == expected
    assert record.retry_count == (2 if retries else 0)
