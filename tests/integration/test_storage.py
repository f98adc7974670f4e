"""Exactly-once storage on DynamoDB Local: dedupe, partial batch failure, statuses, retention, no secrets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from messenger.config import get_settings
from messenger.events import STATUS_RANK, Event, Kind, Provider, conversation_id
from messenger.inbound import routes
from messenger.storage import DynamoStore, OutboundMessage, Turn, UnreadMessage
from messenger.storage.codec import event_key, message_key
from tests.helpers import (
    BIG_TEXT_CHARS,
    LONG_USER,
    PAGE_ID,
    SECRETS,
    dumps,
    load_handler,
    meta_body,
    meta_message,
    meta_post,
    unstorable_batch,
    vonage_inbound_v1,
    vonage_post,
)

pytestmark = pytest.mark.integration

USER = "3998527223577371"
RETENTION_DAYS = 7


@pytest.fixture
def store(table) -> DynamoStore:
    return table.store(RETENTION_DAYS)


@pytest.fixture
def env(stack_env, monkeypatch):
    """The stack environment with a short retention, so expires_at is easy to check."""
    monkeypatch.setenv("RETENTION_DAYS", str(RETENTION_DAYS))
    get_settings.cache_clear()
    routes.event_store.cache_clear()
    return stack_env


@pytest.fixture
def handler(env):
    return load_handler("webhook").lambda_handler


class ThrottleOnNthPut:
    """A DynamoDB client that fails the n-th PutItem like a throttled table, and passes everything else."""

    def __init__(self, client: Any, fail_on: int) -> None:
        self._client = client
        self._fail_on = fail_on
        self.puts = 0
        self._lock = threading.Lock()

    def put_item(self, **kwargs: Any) -> Any:
        with self._lock:  # a batch's puts run on several threads
            self.puts += 1
            fail = self.puts == self._fail_on
        if fail:
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}}
            raise ClientError(error, "PutItem")
        return self._client.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def text_event(event_id: str, ts: int = 1_700_000_000_000, provider: Provider = Provider.META) -> Event:
    return Event(
        provider=provider,
        event_id=event_id,
        kind=Kind.MESSAGE,
        page_id=PAGE_ID,
        user_id=USER,
        timestamp_ms=ts,
        text="hi",
        raw={"mid": event_id},
    )


def conv(provider: str = "vonage", user: str = USER) -> str:
    return conversation_id(provider, PAGE_ID, user)


def put_outbound(store: DynamoStore, provider: str, message_id: str, sent_ms: int, user: str = USER) -> None:
    """An outbound item as the reply function records it (Vonage's send answers `submitted`)."""
    store.record_outbound(
        OutboundMessage(conv(provider, user), provider, message_id, PAGE_ID, user, "m_in", 0, sent_ms, "submitted")
    )


def put_sent(store: DynamoStore, provider: str, sent: list[tuple[str, int]], user: str = USER) -> None:
    """Outbound messages as a reply turn leaves them: recorded, and on the conversation's unread list (which
    read receipts with only a watermark consult)."""
    for message_id, sent_ms in sent:
        put_outbound(store, provider, message_id, sent_ms, user)
    conversation = conv(provider, user)
    turn = store.take_turn(conversation, "t", now_ms=0, until_ms=1)
    assert isinstance(turn, Turn)
    unread = [*turn.unread, *(UnreadMessage(m, at) for m, at in sent)]
    store.end_turn(conversation, "t", answered_through="", unread=unread)


def status_of(table, provider: str, message_id: str, user: str = USER) -> str | None:
    item = table.get(message_key(conv(provider, user), message_id))
    return item.get("status") if item else None


# -- dedupe -------------------------------------------------------------------------------------


def test_conditional_put_stores_an_event_once(table, store):
    # Given one event
    event = text_event("m_once")
    # When it is stored three times
    results = [store.store_event(event) for _ in range(3)]
    # Then only the first write happened, and one item exists
    assert results == [True, False, False]
    assert [(i["pk"], i["sk"]) for i in table.items()] == [event_key(conv("meta"), "m_once", event.timestamp_ms)]
    assert table.items()[0]["sk"] == "EVT#001700000000000#m_once"  # provider time first: the user's order


def test_redelivery_does_not_overwrite_the_first_copy(table, store):
    # Given a stored event
    store.store_event(text_event("m_keep"), now_s=1_000)
    # When a redelivery arrives later (same id, different receive time)
    assert store.store_event(text_event("m_keep"), now_s=2_000) is False
    # Then the original item is untouched
    assert table.get(event_key(conv("meta"), "m_keep", 1_700_000_000_000))["received_at"] == 1_000


def test_a_redelivered_message_without_a_provider_time_is_stored_once(handler, lambda_context, env):
    # Given a Vonage inbound message without a timestamp, and a Meta message with none (nor an entry time)
    vonage = vonage_inbound_v1("aaaaaaaa-bbbb-4ccc-8ddd-00000000c001")
    del vonage["timestamp"]
    meta = {"object": "page", "entry": [{"id": PAGE_ID, "messaging": [meta_message("m_no_time", "hi")]}]}
    del meta["entry"][0]["messaging"][0]["timestamp"]
    # When each is delivered, and delivered again a moment later
    for _ in range(2):
        assert handler(vonage_post("/vonage/inbound", dumps(vonage)), lambda_context)["statusCode"] == 200
        assert handler(meta_post(dumps(meta)), lambda_context)["statusCode"] == 200
        time.sleep(0.005)
    # Then each is stored once (a redelivery must address the same item), so it is answered once
    assert sorted(i["event_id"] for i in env.items()) == ["aaaaaaaa-bbbb-4ccc-8ddd-00000000c001", "m_no_time"]


def test_same_id_different_providers_are_different_items(table, store):
    # Given the same id from Meta and from Vonage / When both are stored / Then both exist
    assert store.store_event(text_event("same-id"))
    assert store.store_event(text_event("same-id", provider=Provider.VONAGE))
    assert len(table.items()) == 2


# -- a batch that fails part-way ----------------------------------------------------------------


def test_batch_with_failed_third_write_is_503_then_redelivery_completes_it(handler, lambda_context, env):
    # Given a Meta batch of five messages, and a table that throttles the third write
    mids = [f"m_batch_{i}" for i in range(1, 6)]
    raw = dumps(meta_body(*(meta_message(mid, f"text {mid}") for mid in mids)))
    cached = routes.store_for(get_settings())
    flaky = ThrottleOnNthPut(cached.client, fail_on=3)
    cached.client = flaky
    # When Meta delivers it
    first = handler(meta_post(raw), lambda_context)
    # Then the webhook answers 503 so Meta redelivers; the two before it are stored, and the two after it (same
    # conversation) wait, so they never reach the stream before the third
    assert first["statusCode"] == 503 and json.loads(first["body"]) == {"error": "storage_unavailable"}
    assert len(env.items()) == 2
    # When Meta redelivers the same body (the table has recovered)
    second = handler(meta_post(raw), lambda_context)
    # Then the missing three are stored, the first two are recognised as duplicates
    assert second["statusCode"] == 200
    assert json.loads(second["body"]) == {"stored": 3, "duplicates": 2}
    # And every event is in the table exactly once
    items = env.items()
    assert sorted(i["event_id"] for i in items) == mids
    assert len({(i["pk"], i["sk"]) for i in items}) == len(items) == 5
    assert flaky.puts == 3 + 5  # two, the throttled third (the last two waited), then all five again


def test_failed_vonage_write_is_503_then_stored_once(handler, lambda_context, env):
    # Given a table that throttles the first write
    cached = routes.store_for(get_settings())
    cached.client = ThrottleOnNthPut(cached.client, fail_on=1)
    raw = dumps(vonage_inbound_v1("aaaaaaaa-bbbb-4ccc-8ddd-00000000f001"))
    # When Vonage delivers, then retries / Then 503 first (retried by Vonage), then 200 and one item
    assert handler(vonage_post("/vonage/inbound", raw), lambda_context)["statusCode"] == 503
    assert env.items() == []
    assert handler(vonage_post("/vonage/inbound", raw), lambda_context)["statusCode"] == 200
    assert handler(vonage_post("/vonage/inbound", raw), lambda_context)["statusCode"] == 200
    assert [i["event_id"] for i in env.items()] == ["aaaaaaaa-bbbb-4ccc-8ddd-00000000f001"]


# -- status ordering ----------------------------------------------------------------------------


def test_status_never_moves_backwards(table, store):
    # Given an outbound message
    put_outbound(store, "vonage", "uuid-order", 1_000)
    # When statuses arrive out of order: read before delivered
    assert store.apply_status(conv("vonage"), "uuid-order", "read", at_ms=3_000) is True
    assert store.apply_status(conv("vonage"), "uuid-order", "delivered", at_ms=2_000) is False
    assert store.apply_status(conv("vonage"), "uuid-order", "submitted", at_ms=1_500) is False
    # Then it stays read, with read's time and rank
    item = table.get(message_key(conv(), "uuid-order"))
    assert (item["status"], item["status_rank"], item["status_at_ms"]) == ("read", STATUS_RANK["read"], 3_000)


@pytest.mark.parametrize("terminal", ["rejected", "undeliverable", "failed"])
def test_failure_statuses_are_terminal(table, store, terminal):
    # Given a submitted message that was then rejected, with the reason
    put_outbound(store, "vonage", "uuid-rej", 1_000)
    error = {"code": "1340", "reason": "Outside of the allowed window"}
    assert store.apply_status(conv("vonage"), "uuid-rej", terminal, at_ms=2_000, error=error)
    # When later statuses arrive / Then none moves it
    for later in ("submitted", "delivered", "read", "rejected"):
        assert store.apply_status(conv("vonage"), "uuid-rej", later, at_ms=3_000) is False
    item = table.get(message_key(conv(), "uuid-rej"))
    assert item["status"] == terminal and item["status_error"] == error


def test_unknown_status_is_ignored(table, store):
    # Given an outbound message / When a status we do not know arrives / Then nothing changes
    put_outbound(store, "vonage", "uuid-unk", 1_000)
    assert store.apply_status(conv("vonage"), "uuid-unk", "teleported", at_ms=2_000) is False
    assert status_of(table, "vonage", "uuid-unk") == "submitted"


def test_status_before_outbound_record_is_kept_and_not_undone(table, store):
    # Given a status callback that arrives before the reply function recorded its message
    assert store.apply_status(conv("vonage"), "uuid-early", "delivered", at_ms=2_000)
    # When the late "submitted" arrives / Then the item stays delivered and carries a TTL
    assert store.apply_status(conv("vonage"), "uuid-early", "submitted", at_ms=1_000) is False
    item = table.get(message_key(conv(), "uuid-early"))
    assert item["status"] == "delivered" and item["expires_at"] > time.time()


def test_vonage_status_webhook_submitted_read_delivered_stays_read(handler, lambda_context, env):
    # Given an outbound Vonage message
    store = routes.store_for(get_settings())
    put_outbound(store, "vonage", "aaaaaaaa-bbbb-4ccc-8ddd-00000000a001", 1_000)

    def status(name: str, **extra: Any) -> int:
        body = {
            "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-00000000a001",
            "to": USER,
            "from": PAGE_ID,
            "channel": "messenger",
            "timestamp": "2025-02-03T12:14:25Z",
            "status": name,
            **extra,
        }
        return handler(vonage_post("/vonage/status", dumps(body)), lambda_context)["statusCode"]

    # When submitted, read, delivered arrive in that order / Then each is acknowledged
    assert [status("submitted"), status("read"), status("delivered")] == [200, 200, 200]
    # Then the message is read
    assert status_of(env, "vonage", "aaaaaaaa-bbbb-4ccc-8ddd-00000000a001") == "read"
    # And a later rejection (terminal, outranks read) sticks
    assert status("rejected", error={"title": "1340", "detail": "window"}) == 200
    assert status("delivered", timestamp="2025-02-03 12:15:00 UTC") == 200
    assert status_of(env, "vonage", "aaaaaaaa-bbbb-4ccc-8ddd-00000000a001") == "rejected"


# -- Meta deliveries and reads ------------------------------------------------------------------


def receipt(kind: str, watermark: int, mids: list[str] | None = None, ts: int = 1_700_000_100_000) -> dict:
    value: dict[str, Any] = {"watermark": watermark}
    if mids is not None:
        value["mids"] = mids
    return {"sender": {"id": USER}, "recipient": {"id": PAGE_ID}, "timestamp": ts, kind: value}


def test_meta_delivery_with_mids_marks_those_messages(handler, lambda_context, env):
    # Given two outbound Meta messages and a third one not named in the receipt
    store = routes.store_for(get_settings())
    for mid, sent in (("m_out_1", 1_000), ("m_out_2", 2_000), ("m_out_3", 3_000)):
        put_outbound(store, "meta", mid, sent)
    # When a delivery receipt names the first two
    raw = dumps(meta_body(receipt("delivery", 1_500, mids=["m_out_1", "m_out_2"])))
    response = handler(meta_post(raw), lambda_context)
    # Then those two are delivered, the third is not, and the receipt itself is stored once
    assert response["statusCode"] == 200
    assert [status_of(env, "meta", m) for m in ("m_out_1", "m_out_2", "m_out_3")] == [
        "delivered",
        "delivered",
        "submitted",
    ]
    assert [i["kind"] for i in env.items() if i["sk"].startswith("EVT#")] == ["delivery"]
    # And a redelivery of the receipt changes nothing and stores nothing new
    assert json.loads(handler(meta_post(raw), lambda_context)["body"]) == {"stored": 0, "duplicates": 1}


def test_meta_delivery_with_only_a_watermark(handler, lambda_context, env):
    # Given three outbound messages sent at 1000, 2000 and 3000 ms
    store = routes.store_for(get_settings())
    put_sent(store, "meta", [("m_w1", 1_000), ("m_w2", 2_000), ("m_w3", 3_000)])
    # When a delivery with watermark 2000 and no mids arrives
    assert handler(meta_post(dumps(meta_body(receipt("delivery", 2_000)))), lambda_context)["statusCode"] == 200
    # Then the messages sent up to 2000 are delivered, the later one is not
    assert [status_of(env, "meta", m) for m in ("m_w1", "m_w2", "m_w3")] == ["delivered", "delivered", "submitted"]
    # And the conversation remembers the watermark, so the next one marks only what was sent after it
    assert env.get((conv("meta"), "STATE"))["delivered_watermark_ms"] == 2_000
    assert store.outbound_before(conv("meta"), 3_000, below="delivered") == ["m_w3"]


def test_meta_read_watermark_updates_outbound_items(handler, lambda_context, env):
    # Given outbound messages: one delivered, one submitted, one sent after the watermark, and one failed
    store = routes.store_for(get_settings())
    put_sent(store, "meta", [("m_r1", 1_000), ("m_r2", 2_000), ("m_r3", 5_000), ("m_r4", 1_500)])
    store.apply_status(conv("meta"), "m_r1", "delivered", at_ms=1_100)
    store.apply_status(conv("meta"), "m_r4", "failed", at_ms=1_600)
    # And an outbound message to another user in the same period
    put_sent(store, "meta", [("m_other", 1_000)], user="555")
    # When the user reads up to 4000 ms
    assert handler(meta_post(dumps(meta_body(receipt("read", 4_000)))), lambda_context)["statusCode"] == 200
    # Then the messages before the watermark are read; the later one, the failed one and the other user's are not
    assert [status_of(env, "meta", m) for m in ("m_r1", "m_r2", "m_r3", "m_r4")] == [
        "read",
        "read",
        "submitted",
        "failed",
    ]
    assert status_of(env, "meta", "m_other", user="555") == "submitted"
    # And a later delivery receipt cannot move them back
    handler(meta_post(dumps(meta_body(receipt("delivery", 4_000, ts=1_700_000_200_000)))), lambda_context)
    assert status_of(env, "meta", "m_r1") == "read"


# -- retention and secrets ----------------------------------------------------------------------


def all_kinds_of_traffic(handler, lambda_context, store) -> None:
    put_outbound(store, "meta", "m_ttl_out", 1_000)
    bodies = [
        meta_body(meta_message("m_ttl_1", "h\u00e9llo")),
        meta_body(
            {
                "sender": {"id": PAGE_ID},
                "recipient": {"id": USER},
                "timestamp": 2_000,
                "message": {"is_echo": True, "mid": "m_ttl_echo", "text": "sent by a person"},
            }
        ),
        meta_body(receipt("read", 4_000)),
        meta_body(
            {
                "sender": {"id": USER},
                "recipient": {"id": PAGE_ID},
                "timestamp": 3_000,
                "postback": {"title": "Start", "payload": "GET_STARTED"},
            }
        ),
        meta_body(meta_message("m_ttl_sb", "standby"), standby=True),
    ]
    for body in bodies:
        assert handler(meta_post(dumps(body)), lambda_context)["statusCode"] == 200
    assert (
        handler(vonage_post("/vonage/inbound", dumps(vonage_inbound_v1("uuid-ttl-in"))), lambda_context)["statusCode"]
        == 200
    )
    status = {
        "message_uuid": "uuid-ttl-out",
        "to": USER,
        "from": PAGE_ID,
        "timestamp": "2025-02-03T12:14:25Z",
        "status": "delivered",
        "channel": "messenger",
    }
    assert handler(vonage_post("/vonage/status", dumps(status)), lambda_context)["statusCode"] == 200


def test_every_item_expires_after_the_retention_period(handler, lambda_context, env):
    # Given RETENTION_DAYS=7 and a mix of events, statuses and outbound messages
    before = int(time.time())
    all_kinds_of_traffic(handler, lambda_context, routes.store_for(get_settings()))
    after = int(time.time())
    items = env.items()
    assert len(items) >= 9
    # Then every item carries expires_at
    assert all("expires_at" in i for i in items), [i["sk"] for i in items if "expires_at" not in i]
    # And for events it is exactly received_at + 7 days; for the rest, 7 days after they were written
    retention = RETENTION_DAYS * 86_400
    for item in items:
        if item["sk"].startswith("EVT#"):
            assert item["expires_at"] == item["received_at"] + retention
            assert before <= item["received_at"] <= after
        else:
            assert before + retention <= item["expires_at"] <= after + retention


def _leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value] if isinstance(value, str) else []


def test_no_item_contains_a_secret_value(handler, lambda_context, env):
    # Given every secret value of events/sandbox-secrets.json
    secrets = [s for s in _leaves(SECRETS) if len(s) >= 8]
    assert len(secrets) >= 6
    # When all kinds of traffic have been stored (signed with those secrets)
    all_kinds_of_traffic(handler, lambda_context, routes.store_for(get_settings()))
    # Then no stored item contains any of them, nor the private key's body
    dumped = json.dumps(env.items(), ensure_ascii=False)
    for secret in secrets:
        assert secret not in dumped
    assert "PRIVATE KEY" not in dumped and "Bearer" not in dumped and "sha256=" not in dumped


# -- events DynamoDB cannot take as they are ------------------------------------------------------------


class RejectPuts:
    """A DynamoDB client that answers ValidationException to every PutItem `refuse(item)` is true for."""

    def __init__(self, client: Any, refuse: Callable[[dict[str, Any]], bool]) -> None:
        self._client = client
        self._refuse = refuse
        self.rejected = 0

    def put_item(self, **kwargs: Any) -> Any:
        if self._refuse(kwargs["Item"]):
            self.rejected += 1
            error = {"Error": {"Code": "ValidationException", "Message": "One or more parameter values were invalid"}}
            raise ClientError(error, "PutItem")
        return self._client.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_signed_batch_of_unstorable_events_is_200_stored_bounded_and_redelivered_as_duplicates(
    handler, lambda_context, env
):
    # Given a signed batch: an oversized text, a long mid, a long user id and a huge number between two
    # ordinary messages
    body, mids = unstorable_batch("dyn", user=USER)
    # When Meta delivers it
    first = handler(meta_post(body), lambda_context)
    # Then it is answered 200 and every event is stored once, the odd ones in a bounded form
    assert first["statusCode"] == 200 and json.loads(first["body"]) == {"stored": 6, "duplicates": 0}
    items = {i["event_id"]: i for i in env.items()}
    assert sorted(items) == sorted(mids.values())
    assert items[mids["ok1"]]["text"] == "first" and items[mids["ok2"]]["text"] == "second"
    assert "text" not in items[mids["big"]] and items[mids["big"]]["omitted"]["text"]["bytes"] == BIG_TEXT_CHARS
    assert "~sha256:" in items[mids["long_mid"]]["sk"] and items[mids["long_mid"]]["text"] == "long mid"
    assert items[mids["long_user"]]["user_id"] == LONG_USER and "~sha256:" in items[mids["long_user"]]["pk"]
    assert items[mids["huge_number"]]["omitted"] == {"attachments": {"reason": "not_storable"}}
    # When Meta redelivers it / Then nothing new is stored
    second = handler(meta_post(body), lambda_context)
    assert second["statusCode"] == 200 and json.loads(second["body"]) == {"stored": 0, "duplicates": 6}
    assert len(env.items()) == 6


def test_a_validation_exception_is_permanent_the_safe_form_is_tried_then_the_event_skipped(
    handler, lambda_context, env
):
    # Given a table that refuses m_odd while it holds a number attribute, and m_gone in any form
    raw = dumps(meta_body(meta_message("m_ok"), meta_message("m_odd"), meta_message("m_gone")))
    cached = routes.store_for(get_settings())

    def refuse(item: dict[str, Any]) -> bool:
        mid = item.get("event_id", {}).get("S")
        return mid == "m_gone" or (mid == "m_odd" and "timestamp_ms" in item)

    cached.client = RejectPuts(cached.client, refuse)
    # When Meta delivers the batch
    response = handler(meta_post(raw), lambda_context)
    # Then it is 200, never 5xx: m_odd is stored in its safe form (strings only), m_gone is skipped
    assert response["statusCode"] == 200 and json.loads(response["body"]) == {"stored": 2, "duplicates": 0}
    items = {i["event_id"]: i for i in env.items()}
    assert sorted(items) == ["m_odd", "m_ok"]
    assert items["m_odd"]["omitted"]["timestamp_ms"] == {"reason": "rejected"} and items["m_odd"]["text"] == "hello"
    assert cached.client.rejected == 1 + 2
