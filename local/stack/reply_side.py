"""The reply side of the local stack: the stream poller feeding the reply function's pool, its start, stop and
restart (a restart is a cold start from the saved checkpoints), its state, and the on-failure queue."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devkit.local_aws import REGION, client
from devkit.streams import StreamReader
from local.poller import CheckpointStore, StreamPoller
from local.stack.settings import TABLE_NAME, Log, Options
from local.template import stream_settings
from local.workers import Function


class ReplySide:
    def __init__(
        self,
        functions: dict[str, Function],
        reply_id: str,
        new_pool: Callable[[str], Function],
        *,
        checkpoint_file: Path,
        options: Options,
        log: Log,
    ) -> None:
        """`functions` is the stack's table of function pools (the reply's is replaced on a cold start)."""
        self.functions = functions
        self.reply_id = reply_id
        self.new_pool = new_pool
        self.checkpoint_file = checkpoint_file
        self.options = options
        self.log = log
        self.poller: StreamPoller | None = None
        self.stream_arn = ""
        self.dynamodb_url = ""
        self.moto_url = ""
        self.queue_url = ""
        self._lock = threading.Lock()

    def attach(self, *, stream_arn: str, dynamodb_url: str, moto_url: str, queue_url: str) -> None:
        """Where the stream and the on-failure queue are (known once the services are up)."""
        self.stream_arn, self.dynamodb_url, self.moto_url, self.queue_url = (
            stream_arn,
            dynamodb_url,
            moto_url,
            queue_url,
        )

    def start(self, reload: bool = True) -> bool:
        """(Re)start the reply side: a fresh poller from the saved checkpoints; `reload` = a cold start."""
        with self._lock:
            if self.poller is not None:
                self.poller.stop()
                self.log("[poller] stopped (in-flight batch finished and checkpointed)")
                self.poller = None
            reply = self.functions[self.reply_id]
            if not reply.available:
                self.log(
                    f"[poller] {reply.spec.code_uri}/{reply.spec.module_file} does not exist yet: the stream is "
                    "not polled (POST /_local/poller/restart once it does)"
                )
                return False
            if reload or reply.state != "ready":
                reply.stop()
                reply = self.functions[self.reply_id] = self.new_pool(self.reply_id)
                reply.start()
                reply.wait_ready()
            settings = stream_settings(self.reply_id)
            checkpoints = CheckpointStore(self.stream_arn, self.checkpoint_file)
            reader = StreamReader(
                client("dynamodbstreams", self.dynamodb_url),
                self.stream_arn,
                settings.starting_position,
                positions=checkpoints.get(),
                region=REGION,
            )
            # The pool has a worker per lane (of every virtual child shard): concurrent batches never share one.
            self.poller = StreamPoller(
                reader,
                reply.invoke,
                settings,
                checkpoints,
                on_failure=self.send_to_queue,
                function_arn=reply.arn,
                poll_interval_s=self.options.poll_interval_s,
                retry_delay_s=self.options.retry_delay_s,
                log=self.log,
                split=self.options.stream_split,
                order=self.options.stream_order,
            )
            self.poller.start()
            split = f", split into {self.poller.split} child shards" if self.poller.split > 1 else ""
            order = f", records handed out {self.poller.order}" if self.poller.order != "stream" else ""
            self.log(
                f"[poller] polling {TABLE_NAME}'s stream for {self.reply_id}: batch {settings.batch_size}, "
                f"{settings.parallelization_factor} lane(s) per shard (by full item key){split}{order}, "
                f"window {settings.batching_window_s:g}s, retries {settings.maximum_retry_attempts}, "
                f"max age {settings.maximum_record_age_s}s, bisect {settings.bisect_on_error}, "
                f"{len(settings.filter_patterns)} filter pattern(s), resuming from "
                f"{len(checkpoints.get())} shard checkpoint(s)"
            )
            return True

    def stop(self) -> None:
        with self._lock:
            if self.poller is not None:
                self.poller.stop()
                self.poller = None
                self.log("[poller] stopped (in-flight batch finished and checkpointed)")

    def state(self) -> dict[str, Any]:
        poller = self.poller
        if poller is None:
            return {"running": False}
        return {
            "running": poller.running,
            "idle": poller.idle,
            "checkpoints": poller.checkpoints.get(),
            "stats": poller.stats.as_dict(),
        }

    def send_to_queue(self, message: dict[str, Any]) -> None:
        client("sqs", self.moto_url).send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message))

    def failures(self) -> list[dict[str, Any]]:
        """Messages on the on-failure queue (peeked: they stay there)."""
        sqs = client("sqs", self.moto_url)
        messages: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(10):
            batch = sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
            ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                messages.append(json.loads(message["Body"]))
        return messages
