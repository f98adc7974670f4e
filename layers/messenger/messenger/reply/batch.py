"""The batch: a Powertools `BatchProcessor` for DynamoDB Streams that runs records per conversation.

A stream record is a doorbell for its conversation (docs/design.md, "Ordering"): the handler is called once
per conversation of the batch, as `handler(records: list[ReplyRecord], lambda_context)` with that
conversation's records decoded once (records.py), and answers the conversation's pending messages in the
user's order. Different conversations run concurrently on worker threads. When a conversation is blocked
(the handler raises), all of its records are reported failed, so they are delivered again. Powertools builds
the partial-batch response (`batchItemFailures` by SequenceNumber) as usual.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from messenger.errors import NotAttemptedError
from messenger.observability import tracer
from messenger.reply.records import ReplyRecord, conversation_key, decode
from messenger.reply.stats import STATS

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

DEFAULT_WORKERS = 32

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Outcome = tuple[bool, Any]  # (True, the handler's result) or (False, the failure's exc_info)
ConversationHandler = Callable[[list[ReplyRecord], "LambdaContext | None"], Any]


class ConversationOrderedProcessor(BatchProcessor):
    """BatchProcessor(DynamoDBStreams) whose records run per conversation, conversations in parallel.

    `prepare` runs before the batch (it builds the pipeline: a bad configuration fails the invocation, not
    each record); `finish` after it (it emits the metrics the workers collected).
    """

    def __init__(
        self,
        *,
        max_workers: int = DEFAULT_WORKERS,
        min_remaining_ms: int = 3_000,
        prepare: Callable[[], Any] | None = None,
        finish: Callable[[], Any] | None = STATS.flush,
    ) -> None:
        # A batch that failed entirely is still answered with its batchItemFailures (not an exception),
        # so Lambda retries exactly those records instead of bisecting a batch that had no bad record.
        super().__init__(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
        self.max_workers = max_workers
        self.min_remaining_ms = min_remaining_ms
        self.prepare = prepare
        self.finish = finish
        self.context: LambdaContext | None = None

    def __call__(
        self, records: list[dict[str, Any]], handler: Callable[..., Any], lambda_context: LambdaContext | None = None
    ) -> ConversationOrderedProcessor:
        self.context = lambda_context  # every record handler gets it (it tells the time left)
        super().__call__(records, handler, lambda_context)
        return self

    def process(self) -> list[tuple[Any, ...]]:
        if self.prepare is not None:
            self.prepare()
        groups: dict[str, list[int]] = {}
        for index, record in enumerate(self.records):
            groups.setdefault(conversation_key(record), []).append(index)
        outcomes: list[Outcome] = [(False, None)] * len(self.records)
        entity = _trace_entity()
        try:
            workers = max(1, min(self.max_workers, len(groups)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reply") as pool:
                futures = [pool.submit(self._run_group, indexes, entity) for indexes in groups.values()]
                for future in futures:
                    for index, outcome in future.result():
                        outcomes[index] = outcome
        finally:
            if self.finish is not None:
                self.finish()
        results: list[tuple[Any, ...]] = []
        for record, (ok, value) in zip(self.records, outcomes, strict=True):
            if ok:
                results.append(self.success_handler(record=record, result=value))
            else:
                # Powertools reads the SequenceNumber of a failure from its DynamoDB Streams data class.
                results.append(self.failure_handler(record=DynamoDBRecord(record), exception=value))
        return results

    def _run_group(self, indexes: list[int], entity: Any) -> list[tuple[int, Outcome]]:
        """One conversation's records, answered together; when too little time is left they wait."""
        _set_trace_entity(entity)
        outcome: Outcome
        if self._remaining_ms() < self.min_remaining_ms:
            outcome = (False, _exc_info(NotAttemptedError("too little time left in the invocation")))
        else:
            handler: ConversationHandler = self.handler
            try:
                outcome = (True, handler([decode(self.records[i]) for i in indexes], self.context))
            except Exception:
                outcome = (False, sys.exc_info())
        return [(index, outcome) for index in indexes]

    def _remaining_ms(self) -> int:
        return self.context.get_remaining_time_in_millis() if self.context is not None else sys.maxsize


def _exc_info(exc: BaseException) -> ExcInfo:
    try:
        raise exc
    except BaseException as raised:
        return type(raised), raised, raised.__traceback__


def _trace_entity() -> Any:
    if tracer.disabled:
        return None
    try:
        return tracer.provider.get_trace_entity()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - tracing must never break replying
        return None


def _set_trace_entity(entity: Any) -> None:
    if entity is None:
        return
    try:
        tracer.provider.set_trace_entity(entity)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        return
