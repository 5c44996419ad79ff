"""Running one claimed message through its step's chain of adapters."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stageline.adapters.registry import Handler, resolve, wants_context
from stageline.domain.config import StepConfig
from stageline.domain.items import COLLECT_KEY, Encoded, child_key, encode
from stageline.domain.retry import Fatal, decide_retry
from stageline.domain.status import MessageStatus
from stageline.sdk.context import StepContext
from stageline.storage.blobs import BlobStore
from stageline.store.items import NewItem
from stageline.store.queue import Claimed, Outcome

log = logging.getLogger("stageline.step")


@dataclass(frozen=True)
class BoundAdapter:
    name: str
    index: int
    fn: Handler
    params: dict[str, Any]
    takes_context: bool


class AdapterFailed(Exception):
    def __init__(self, adapter: BoundAdapter, error: BaseException) -> None:
        super().__init__(str(error))
        self.adapter = adapter
        self.error = error


def bind(step: StepConfig, local: Mapping[str, Handler]) -> list[BoundAdapter]:
    """Resolve a step's adapter names to callables, once per config."""
    chain = []
    for index, ref in enumerate(step.adapters):
        fn = resolve(ref.name, local)
        chain.append(BoundAdapter(ref.name, index, fn, dict(ref.params),
                                  wants_context(fn, ref.params)))
    return chain


def run_message(claimed: Claimed, step: StepConfig, chain: list[BoundAdapter],
                blobs: BlobStore) -> Outcome:
    started = time.perf_counter()
    last = chain[-1]
    if claimed.cached is not None:
        return _from_cache(claimed, step, last, blobs, started)
    user_meta: dict[str, Any] = {}
    try:
        value = _input_value(claimed, step, blobs)
        result = _with_timeout(lambda: _run_chain(claimed, step, chain, value, user_meta),
                               step.timeout)
        outputs = _outputs(claimed, step, result)
    except AdapterFailed as failed:
        outcome = _failure(claimed, step, failed.adapter, failed.error, started)
    except Exception as exc:  # input or output could not be handled
        outcome = _failure(claimed, step, last, exc, started)
    else:
        outcome = Outcome(claimed, MessageStatus.COMPLETED, outputs, last.name, last.index,
                          _elapsed_ms(started))
    outcome.meta.update(user_meta)
    return outcome


def _from_cache(claimed: Claimed, step: StepConfig, last: BoundAdapter, blobs: BlobStore,
                started: float) -> Outcome:
    """An earlier run's outputs for the same input, keyed for this message."""
    hit = claimed.cached
    assert hit is not None
    values = [Encoded(item.raw(blobs), item.content_type, item.content_hash)
              for item in hit.items]
    outputs = [NewItem(step.output, key, claimed.correlation_id, encoded)
               for key, encoded in zip(_output_keys(claimed, step, len(values)), values,
                                       strict=True)]
    meta = {"cache_hit": True, "cache_source": {"execution_id": str(hit.execution_id),
                                                "correlation_id": hit.correlation_id}}
    return Outcome(claimed, MessageStatus.COMPLETED, outputs, last.name, last.index,
                   _elapsed_ms(started), meta=meta)


def _output_keys(claimed: Claimed, step: StepConfig, count: int) -> list[str]:
    if claimed.item_key is None:
        return [COLLECT_KEY]
    if not step.fan_out:
        return [claimed.item_key]
    return [child_key(claimed.item_key, i, True) for i in range(count)]


def _input_value(claimed: Claimed, step: StepConfig, blobs: BlobStore) -> Any:
    if claimed.item_key is None:
        return [item.load(blobs) for item in claimed.inputs]
    if not claimed.inputs:
        raise Fatal(f"input item {claimed.item_key!r} of stage {step.input!r} is missing")
    return claimed.inputs[0].load(blobs)


def _run_chain(claimed: Claimed, step: StepConfig, chain: list[BoundAdapter],
               value: Any, user_meta: dict[str, Any]) -> Any:
    for adapter in chain:
        try:
            value = _call(adapter, claimed, step, value, user_meta)
        except Exception as exc:
            raise AdapterFailed(adapter, exc) from exc
    return value


def _call(adapter: BoundAdapter, claimed: Claimed, step: StepConfig, value: Any,
          user_meta: dict[str, Any]) -> Any:
    args: list[Any] = [value]
    if adapter.takes_context:
        args.append(StepContext(
            execution_id=claimed.execution_id, correlation_id=claimed.correlation_id,
            step=step.name, adapter_name=adapter.name, adapter_index=adapter.index,
            attempt=claimed.attempt, item_key=claimed.item_key, logger=log,
            metadata=user_meta,
        ))
    result = adapter.fn(*args, **adapter.params)
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _with_timeout(fn: Any, timeout: float | None) -> Any:
    """Run fn, giving up after `timeout` seconds.

    Python cannot kill a thread: a handler that overruns keeps running in
    the background, but its result is discarded and the attempt fails.
    """
    if timeout is None:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="stageline-step")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"step did not finish within {timeout} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _outputs(claimed: Claimed, step: StepConfig, result: Any) -> list[NewItem]:
    cid = claimed.correlation_id
    if claimed.item_key is None or not step.fan_out:
        [key] = _output_keys(claimed, step, 1)
        return [NewItem(step.output, key, cid, encode(result))]
    if isinstance(result, str | bytes | dict) or not hasattr(result, "__iter__"):
        raise Fatal(f"fan_out step {step.name!r} must return a list, got "
                    f"{type(result).__name__}")
    values = [encode(value) for value in result]
    keys = _output_keys(claimed, step, len(values))
    return [NewItem(step.output, key, cid, value) for key, value in zip(keys, values,
                                                                        strict=True)]


def _failure(claimed: Claimed, step: StepConfig, adapter: BoundAdapter, error: BaseException,
             started: float) -> Outcome:
    decision = decide_retry(claimed.attempt, step.retries, step.backoff, error)
    info = {
        "type": type(error).__name__,
        "message": str(error),
        "traceback": "".join(traceback.format_exception(error)),
        "adapter_name": adapter.name,
        "adapter_index": adapter.index,
        "attempt": claimed.attempt,
        "will_retry": decision.retry,
    }
    status = MessageStatus.QUEUED if decision.retry else MessageStatus.FAILED
    return Outcome(claimed, status, [], adapter.name, adapter.index, _elapsed_ms(started),
                   info, decision.delay)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
