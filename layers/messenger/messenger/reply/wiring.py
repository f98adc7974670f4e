"""The reply pipeline built from `Settings` (once per warm container) and the record handler of the Lambda."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from messenger.config import Settings, get_settings
from messenger.providers.meta.send import MetaSendClient, MetaSender
from messenger.providers.vonage.send import VonageSendClient, VonageSender
from messenger.reply.batch import DEFAULT_WORKERS
from messenger.reply.ledger import ReplyLedger
from messenger.reply.pipeline import Outcome, ReplyPipeline
from messenger.reply.profiles import ProfileCache
from messenger.reply.records import ReplyRecord
from messenger.reply.responder import load_responder
from messenger.secrets import MetaSecret, VonageSecret, get_meta_secret, get_vonage_secret
from messenger.sending import Sender
from messenger.storage import DynamoStore, dynamodb_client

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


class _LockedSecret[T]:
    """Serialise secret reads so a cold start with many workers fetches each secret once."""

    def __init__(self, fetch: Callable[[], T]) -> None:
        self.fetch = fetch
        self._lock = threading.Lock()

    def __call__(self) -> T:
        with self._lock:
            return self.fetch()


def build_pipeline(settings: Settings, *, workers: int = DEFAULT_WORKERS, **options: Any) -> ReplyPipeline:
    client = dynamodb_client(max_pool_connections=workers + 4)
    store = DynamoStore(settings.events_table, client=client, retention_days=settings.retention_days)

    def meta_secret() -> MetaSecret:
        return get_meta_secret(settings.require_meta_secret_id(), settings.secret_max_age_seconds)

    def vonage_secret() -> VonageSecret:
        return get_vonage_secret(settings.require_vonage_secret_id(), settings.secret_max_age_seconds)

    senders: dict[str, Sender] = {
        "meta": MetaSender(
            MetaSendClient(settings.graph_api_base, settings.graph_api_version, pool_size=workers),
            _LockedSecret(meta_secret),
        ),
        "vonage": VonageSender(
            VonageSendClient(settings.vonage_api_base, pool_size=workers), _LockedSecret(vonage_secret)
        ),
    }
    return ReplyPipeline(
        ledger=ReplyLedger(store),
        responder=load_responder(settings.responder_rules_file, settings.responder_class),
        senders=senders,
        human_agent_enabled=settings.human_agent_tag_enabled,
        handover_pause_s=settings.handover_pause_seconds,
        profiles=ProfileCache(store) if settings.profile_lookup else None,
        **options,
    )


@lru_cache(maxsize=4)
def pipeline_for(settings: Settings) -> ReplyPipeline:
    """One pipeline (pooled HTTP sessions, DynamoDB client, JWT cache) per warm container."""
    return build_pipeline(settings)


def current_pipeline() -> ReplyPipeline:
    return pipeline_for(get_settings())


def conversation_handler(records: list[ReplyRecord], lambda_context: LambdaContext | None = None) -> dict[str, Outcome]:
    """The records of one conversation in a batch: answer its pending messages (outcomes by event id)."""
    remaining = lambda_context.get_remaining_time_in_millis if lambda_context is not None else None
    return current_pipeline().answer([record.inbound for record in records], remaining)
