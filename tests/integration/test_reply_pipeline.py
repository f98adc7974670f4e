"""The reply Lambda in-process, fed by DynamoDB Local's real stream, with the providers mocked by `responses`."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import jwt
import pytest
import requests
import responses

from devkit.local_aws import client
from devkit.streams import StreamReader, strip_internal
from messenger.config import get_settings
from messenger.events import conversation_id
from messenger.handover import BOT_METADATA, bot_metadata
from messenger.reply.ledger import ReplyLedger
from messenger.reply.records import inbound_from_record
from messenger.reply.wiring import current_pipeline, pipeline_for
from messenger.sending import RetryPolicy
from tests.helpers import (
    META,
    PAGE_ID,
    dumps,
    load_handler,
    meta_body,
    meta_message,
    meta_post,
    vonage_inbound_v1,
    vonage_post,
)

pytestmark = pytest.mark.integration

GRAPH = "https://graph.test"
VONAGE = "https://vonage.test"
USER_A, USER_B = "1000000000000001", "1000000000000002"
CONFIRM_WINDOW_MS = 300


class FakeProviders:
    """Answers like the Send API and the Messages API and records every request; faults per recipient."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock
        self.meta_calls: list[dict[str, Any]] = []
        self.vonage_calls: list[dict[str, Any]] = []
        self.meta_faults: dict[str, tuple[int, dict]] = {}
        mock.add_callback(responses.POST, re.compile(rf"{re.escape(GRAPH)}/v25\.0/\d+/messages"), self._meta)
        mock.add_callback(responses.POST, f"{VONAGE}/v1/messages", self._vonage)

    def _meta(self, request: Any) -> tuple[int, dict, str]:
        body = json.loads(request.body)
        self.meta_calls.append({"url": request.url, "body": body})
        fault = self.meta_faults.get(body["recipient"]["id"])
        if fault:
            return fault[0], {}, json.dumps(fault[1])
        return 200, {}, json.dumps({"recipient_id": body["recipient"]["id"], "message_id": f"m_{len(self.meta_calls)}"})

    def _vonage(self, request: Any) -> tuple[int, dict, str]:
        self.vonage_calls.append({"headers": dict(request.headers), "body": json.loads(request.body)})
        return 202, {}, json.dumps({"message_uuid": f"aaaaaaaa-0000-4000-8000-{len(self.vonage_calls):012d}"})

    @property
    def meta_texts(self) -> list[tuple[str, str]]:
        return [(c["body"]["recipient"]["id"], c["body"]["message"]["text"]) for c in self.meta_calls]


@pytest.fixture
def providers(stack_env, monkeypatch):
    monkeypatch.setenv("GRAPH_API_BASE", GRAPH)
    monkeypatch.setenv("VONAGE_API_BASE", VONAGE)
    get_settings.cache_clear()
    pipeline_for.cache_clear()
    pipeline = current_pipeline()
    pipeline.retry = RetryPolicy(max_attempts=2, base_delay_s=0.001, max_delay_s=0.01, reserve_ms=0)
    # An unclear send awaits its echo this long before it is given up (30 s in production).
    pipeline.ledger.confirm_window_ms = CONFIRM_WINDOW_MS
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeProviders(mock)
    pipeline_for.cache_clear()


@pytest.fixture
def stream(stack_env, dynamodb_endpoint):
    return StreamReader(client("dynamodbstreams", dynamodb_endpoint), stack_env.stream_arn)


def drain(reader: StreamReader) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    while batch := reader.poll():
        records.extend(batch)
    return [strip_internal(r) for r in records]


def now_ms() -> int:
    return int(time.time() * 1000)


def ingest_meta(lambda_context, *events: dict[str, Any]) -> None:
    response = load_handler("webhook").lambda_handler(meta_post(dumps(meta_body(*events))), lambda_context)
    assert response["statusCode"] == 200


def reply(records: list[dict[str, Any]], lambda_context) -> dict[str, Any]:
    return load_handler("reply").lambda_handler({"Records": records}, lambda_context)


def seq(record: dict[str, Any]) -> str:
    return record["dynamodb"]["SequenceNumber"]


def test_meta_message_gets_exactly_one_reply_and_is_recorded(providers, stream, stack_env, lambda_context):
    # Given a user message, its echo and a delivery event stored by the webhook
    ts = now_ms()
    ingest_meta(lambda_context, meta_message("m.in.1", "hello there", sender=USER_A, ts=ts))
    ingest_meta(
        lambda_context,
        {
            "sender": {"id": PAGE_ID},
            "recipient": {"id": USER_A},
            "timestamp": ts,
            "message": {"mid": "m.echo.1", "is_echo": True, "text": "x", "metadata": BOT_METADATA},
        },
        {"sender": {"id": USER_A}, "recipient": {"id": PAGE_ID}, "timestamp": ts, "delivery": {"watermark": ts}},
    )
    records = drain(stream)
    # When the reply function gets the stream batch
    result = reply(records, lambda_context)
    # Then exactly one request went to the Send API, shaped per the contract
    assert result == {"batchItemFailures": []}
    assert len(providers.meta_calls) == 1
    call = providers.meta_calls[0]
    assert call["url"].startswith(f"{GRAPH}/v25.0/{PAGE_ID}/messages?")
    assert "access_token=" in call["url"] and "appsecret_proof=" in call["url"]
    assert call["body"]["recipient"] == {"id": USER_A}
    assert call["body"]["messaging_type"] == "RESPONSE"
    assert "Hello" in call["body"]["message"]["text"]
    # And the claim and the outbound message are stored, with a TTL
    claim = stack_env.find("REPLY#m.in.1")
    assert claim["state"] == "sent" and claim["message_ids"] == ["m_1"] and claim["expires_at"] > time.time()
    outbound = stack_env.find("MSG#m_1")
    assert outbound["record_type"] == "outbound" and outbound["status"] == "sent"
    assert outbound["in_reply_to"] == "m.in.1" and outbound["pk"] == f"meta#{PAGE_ID}#{USER_A}"
    assert outbound["expires_at"] > time.time()
    # And the outbound item is what a Meta read watermark finds
    assert stack_env.store().outbound_before(conversation_id("meta", PAGE_ID, USER_A), now_ms() + 1000) == ["m_1"]


def test_vonage_message_is_answered_through_vonage(providers, stream, stack_env, lambda_context):
    # Given a Vonage inbound message from a minute ago
    sent_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    body = {
        "channel": "messenger",
        "message_uuid": "bbbbbbbb-0000-4000-8000-000000000001",
        "to": PAGE_ID,
        "from": USER_B,
        "timestamp": sent_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "message_type": "text",
        "text": "thanks!",
    }
    assert (
        load_handler("webhook").lambda_handler(vonage_post("/vonage/inbound", dumps(body)), lambda_context)[
            "statusCode"
        ]
        == 200
    )
    # When the reply function runs on the stream
    result = reply(drain(stream), lambda_context)
    # Then one Messages API request with the app JWT went out, and nothing to Meta
    assert result == {"batchItemFailures": []}
    assert providers.meta_calls == []
    assert len(providers.vonage_calls) == 1
    call = providers.vonage_calls[0]
    assert call["body"]["from"] == PAGE_ID and call["body"]["to"] == USER_B
    assert call["body"]["channel"] == "messenger" and call["body"]["message_type"] == "text"
    assert call["body"]["messenger"] == {"category": "response"}
    assert call["body"]["client_ref"] == "bbbbbbbb-0000-4000-8000-000000000001"
    token = call["headers"]["Authorization"].removeprefix("Bearer ")
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    # And the outbound item carries the message_uuid as submitted
    outbound = stack_env.find("MSG#aaaaaaaa-0000-4000-8000-000000000001")
    assert outbound["status"] == "submitted" and outbound["record_type"] == "outbound"


def test_replayed_batch_and_own_writes_send_nothing(providers, stream, stack_env, lambda_context):
    # Given two messages answered once
    ingest_meta(
        lambda_context,
        meta_message("m.r.1", "hi", sender=USER_A, ts=now_ms()),
        meta_message("m.r.2", "help", sender=USER_B, ts=now_ms()),
    )
    records = drain(stream)
    assert reply(records, lambda_context) == {"batchItemFailures": []}
    assert len(providers.meta_calls) == 2
    # When the same batch is delivered again, and then the records of our own writes
    own_writes = drain(stream)
    assert own_writes and all(inbound_from_record(r) is None for r in own_writes)
    again = reply(records, lambda_context)
    mixed = reply(own_writes, lambda_context)
    # Then nothing more is sent, and nothing is reported failed
    assert again == {"batchItemFailures": []} and mixed == {"batchItemFailures": []}
    assert len(providers.meta_calls) == 2


def test_transient_failure_fails_only_that_conversation_then_retry_sends_once(
    providers, stream, stack_env, lambda_context
):
    # Given two messages from user A (whose sends fail with a 500) and one from user B
    ts = now_ms()
    ingest_meta(
        lambda_context,
        meta_message("m.a.1", "first", sender=USER_A, ts=ts),
        meta_message("m.b.1", "hello", sender=USER_B, ts=ts + 1),
        meta_message("m.a.2", "second", sender=USER_A, ts=ts + 2),
    )
    records = drain(stream)
    by_event = {r["dynamodb"]["NewImage"]["event_id"]["S"]: r for r in records}
    providers.meta_faults[USER_A] = (500, {"error": {"message": "Service unavailable", "code": 2}})
    # When the reply function runs
    result = reply(records, lambda_context)
    # Then both of A's records are reported (the second never attempted), B is answered
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    assert failed == {seq(by_event["m.a.1"]), seq(by_event["m.a.2"])}
    a_attempts = [c for c in providers.meta_calls if c["body"]["recipient"]["id"] == USER_A]
    assert len(a_attempts) == 2  # one in-invocation retry (max_attempts=2), then reported
    assert [t for u, t in providers.meta_texts if u == USER_B]
    assert stack_env.find("REPLY#m.a.1")["state"] == "retryable"
    assert stack_env.find("REPLY#m.a.2") is None
    # When the provider recovers and Lambda retries from the lowest failed sequence number
    providers.meta_faults.clear()
    retry_from = min(failed, key=int)
    redelivered = [r for r in records if int(seq(r)) >= int(retry_from)]
    before = len(providers.meta_calls)
    assert reply(redelivered, lambda_context) == {"batchItemFailures": []}
    # Then A's two messages are answered once each, in order; B is not answered again
    sent = [c["body"]["recipient"]["id"] for c in providers.meta_calls[before:]]
    assert sent == [USER_A, USER_A]
    claim = stack_env.find("REPLY#m.a.1")
    assert claim["state"] == "sent" and claim["attempts"] == 2


@pytest.mark.parametrize(
    ("error", "state", "code"),
    [
        ({"message": "Invalid parameter", "code": 100, "error_subcode": 2018001}, "failed", "meta_100"),
        ({"message": "Outside window", "code": 10, "error_subcode": 2018278}, "failed", "meta_outside_window"),
        (
            {"message": "Received invalid JSON reply", "code": 1, "error_subcode": 1357046},
            "ambiguous",
            "meta_invalid_json_reply",
        ),
    ],
)
def test_permanent_and_ambiguous_errors_are_recorded_not_retried(
    providers, stream, stack_env, lambda_context, error, state, code
):
    # Given a message whose send the provider refuses (or leaves unclear: no echo ever confirms it)
    ingest_meta(lambda_context, meta_message("m.p.1", "hello", sender=USER_A, ts=now_ms()))
    records = drain(stream)
    providers.meta_faults[USER_A] = (400, {"error": error})
    # When the reply function runs (an unclear send awaits its confirmation, then is given up), and the
    # record is delivered again
    first = reply(records, lambda_context)
    second = reply(records, lambda_context)
    # Then it was tried once, recorded with the provider's reason, and not reported for retry
    assert first == second == {"batchItemFailures": []}
    assert len(providers.meta_calls) == 1
    claim = stack_env.find("REPLY#m.p.1")
    assert claim["state"] == state and claim["code"] == code
    assert META["page_tokens"][PAGE_ID] not in json.dumps(claim)


def test_message_outside_the_24h_window_is_not_answered(providers, stream, stack_env, lambda_context):
    # Given a message two days old (HUMAN_AGENT tag disabled)
    ingest_meta(lambda_context, meta_message("m.old.1", "hello", sender=USER_A, ts=now_ms() - 48 * 3600 * 1000))
    # When the reply function runs
    result = reply(drain(stream), lambda_context)
    # Then nothing is sent and the claim says why
    assert result == {"batchItemFailures": []}
    assert providers.meta_calls == []
    claim = stack_env.find("REPLY#m.old.1")
    assert claim["state"] == "failed" and claim["code"] == "outside_window"


def test_status_that_arrived_first_is_not_moved_back(stack_env):
    # Given a delivery status recorded before the reply wrote its outbound item
    store = stack_env.store()
    store.apply_status(conversation_id("vonage", PAGE_ID, USER_A), "uuid-early", "delivered", at_ms=now_ms())
    assert stack_env.find("EVT#x") is None
    from messenger.messages import InboundMessage

    inbound = InboundMessage("vonage", "evt-1", "message", PAGE_ID, USER_A, f"vonage#{PAGE_ID}#{USER_A}", now_ms())
    # When the reply records the message as submitted
    ReplyLedger(store).record_outbound(inbound, "uuid-early", status="submitted", text="hi", part_index=0)
    # Then the status stays delivered and the message fields are filled in
    outbound = stack_env.find("MSG#uuid-early")
    assert outbound["status"] == "delivered" and outbound["record_type"] == "outbound"
    assert outbound["in_reply_to"] == "evt-1"


# -- handover and profiles (issue 6) ----------------------------------------------------------------


def test_a_human_echo_pauses_the_bot_and_pass_thread_control_resumes_it(providers, stream, stack_env, lambda_context):
    # Given a Page admin who answered by hand (an echo without our metadata)
    ts = now_ms()
    ingest_meta(
        lambda_context,
        {
            "sender": {"id": PAGE_ID},
            "recipient": {"id": USER_A},
            "timestamp": ts,
            "message": {"mid": "m.human.1", "is_echo": True, "text": "I'm on it"},
        },
    )
    # When the user writes again
    ingest_meta(lambda_context, meta_message("m.in.p1", "thanks", sender=USER_A, ts=ts + 1))
    assert reply(drain(stream), lambda_context) == {"batchItemFailures": []}
    # Then the bot stays quiet and says why in the claim
    assert providers.meta_calls == []
    assert stack_env.find("REPLY#m.in.p1")["state"] == "skipped"
    # When control is passed back to our app, the next message is answered
    ingest_meta(
        lambda_context,
        {
            "sender": {"id": USER_A},
            "recipient": {"id": PAGE_ID},
            "timestamp": ts + 2,
            "pass_thread_control": {"new_owner_app_id": 1, "metadata": "done"},
        },
    )
    ingest_meta(lambda_context, meta_message("m.in.p2", "hello again", sender=USER_A, ts=ts + 3))
    assert reply(drain(stream), lambda_context) == {"batchItemFailures": []}
    assert len(providers.meta_calls) == 1


def test_asking_for_a_person_answers_once_then_pauses(providers, stream, stack_env, lambda_context):
    # Given a Vonage user who asks for a human (the documented Vonage handover trigger)
    handler = load_handler("webhook").lambda_handler
    for uuid_suffix, text in (("01", "can I talk to a human please"), ("02", "hello?")):
        body = vonage_inbound_v1(f"aaaaaaaa-bbbb-4ccc-8ddd-0000000000{uuid_suffix}", text, user=USER_A)
        body["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        assert handler(vonage_post("/vonage/inbound", dumps(body)), lambda_context)["statusCode"] == 200
    # When the reply function runs
    assert reply(drain(stream), lambda_context) == {"batchItemFailures": []}
    # Then only the first message got an answer (the hand-over notice); the second waits for the person
    assert len(providers.vonage_calls) == 1
    assert "team" in providers.vonage_calls[0]["body"]["text"]


def test_profile_lookup_personalises_and_failures_never_block(
    providers, stream, stack_env, lambda_context, monkeypatch, tmp_path
):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [], "fallback": {"text": "Hi {first_name}, got it."}}))
    monkeypatch.setenv("RESPONDER_RULES_FILE", str(rules))
    monkeypatch.setenv("PROFILE_LOOKUP", "true")
    get_settings.cache_clear()
    pipeline_for.cache_clear()
    # Given Graph knows user A's first name and fails for user B
    providers.mock.add(responses.GET, f"{GRAPH}/v25.0/{USER_A}", json={"first_name": "Ada", "id": USER_A})
    providers.mock.add(responses.GET, f"{GRAPH}/v25.0/{USER_B}", json={"error": {"code": 100}}, status=400)
    ts = now_ms()
    ingest_meta(
        lambda_context,
        meta_message("m.pr.1", "one", sender=USER_A, ts=ts),
        meta_message("m.pr.2", "two", sender=USER_A, ts=ts + 1),
        meta_message("m.pr.3", "three", sender=USER_B, ts=ts),
    )
    # When the reply function runs
    assert reply(drain(stream), lambda_context) == {"batchItemFailures": []}
    pipeline_for.cache_clear()
    # Then A is greeted by name (looked up once, then cached in the table), B still gets an answer
    texts = sorted(c["body"]["message"]["text"] for c in providers.meta_calls)
    assert texts == ["Hi , got it.", "Hi Ada, got it.", "Hi Ada, got it."]
    lookups = [c for c in providers.mock.calls if c.request.method == "GET" and USER_A in c.request.url]
    assert len(lookups) == 1
    assert stack_env.get((conversation_id("meta", PAGE_ID, USER_A), "PROFILE"))["first_name"] == "Ada"


# -- ambiguous sends reconciled through Meta's echo ------------------------------------------------------

AMBIGUOUS_REPLY = {"error": {"message": "Received invalid JSON reply", "code": 1, "error_subcode": 1357046}}


def our_echo(inbound_mid: str, mid: str, ts: int) -> dict:
    return {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": USER_A},
        "timestamp": ts,
        "message": {
            "mid": mid,
            "is_echo": True,
            "app_id": 1517776481860111,
            "text": "Hello!",
            "metadata": bot_metadata(inbound_mid),
        },
    }


def test_an_echo_of_our_send_settles_an_ambiguous_claim_as_sent(providers, stream, stack_env, lambda_context):
    # Given a send whose outcome Meta left unclear (1/1357046: it may have gone out), given up as ambiguous
    # when no echo came within the confirmation window
    ts = now_ms()
    ingest_meta(lambda_context, meta_message("m.amb.1", "hello", sender=USER_A, ts=ts))
    providers.meta_faults[USER_A] = (400, AMBIGUOUS_REPLY)
    assert reply(drain(stream), lambda_context) == {"batchItemFailures": []}
    claim = stack_env.find("REPLY#m.amb.1")
    assert claim["state"] == "ambiguous" and now_ms() >= claim["confirm_by_ms"]
    # When Meta's echo of that send arrives late (its metadata names the message we answered)
    ingest_meta(lambda_context, our_echo("m.amb.1", "m_echoed_1", ts + 1))
    # Then the claim is settled as sent, the echo did not pause the bot, and nothing was sent twice
    claim = stack_env.find("REPLY#m.amb.1")
    assert claim["state"] == "sent" and claim["reconciled_by"] == "echo"
    assert claim["echo_mids"] == ["m_echoed_1"]
    assert len(providers.meta_calls) == 1
    del providers.meta_faults[USER_A]
    ingest_meta(lambda_context, meta_message("m.amb.2", "and now?", sender=USER_A, ts=ts + 2))
    assert reply(drain(stream), lambda_context) == {"batchItemFailures": []}
    assert len(providers.meta_calls) == 2


def test_an_echo_that_beats_the_timeout_makes_the_unclear_send_count_as_sent(
    providers, stream, stack_env, lambda_context
):
    # Given the echo of our send reached the webhook while the reply function still waited for Meta
    ts = now_ms()
    ingest_meta(lambda_context, meta_message("m.amb.3", "hello", sender=USER_A, ts=ts))
    records = drain(stream)
    providers.meta_faults[USER_A] = (400, AMBIGUOUS_REPLY)
    original = providers._meta

    def echo_then_answer(request):
        ingest_meta(lambda_context, our_echo("m.amb.3", "m_echoed_3", ts + 1))
        return original(request)

    providers.mock.remove(responses.POST, re.compile(rf"{re.escape(GRAPH)}/v25\.0/\d+/messages"))
    providers.mock.add_callback(
        responses.POST, re.compile(rf"{re.escape(GRAPH)}/v25\.0/\d+/messages"), echo_then_answer
    )
    # When the send then ends unclear
    assert reply(records, lambda_context) == {"batchItemFailures": []}
    # Then the claim says sent (confirmed by the echo), not ambiguous
    claim = stack_env.find("REPLY#m.amb.3")
    assert claim["state"] == "sent" and claim["reconciled_by"] == "echo"


def delivery_and_read(mid: str, ts: int) -> list[dict]:
    user, page = {"id": USER_A}, {"id": PAGE_ID}
    return [
        {"sender": user, "recipient": page, "timestamp": ts, "delivery": {"mids": [mid], "watermark": ts}},
        {"sender": user, "recipient": page, "timestamp": ts + 1, "read": {"watermark": ts + 1}},
    ]


def assert_whole_reply_read(table, inbound_mid: str, mid: str, status: str = "read") -> None:
    conversation = conversation_id("meta", PAGE_ID, USER_A)
    claim = table.find(f"REPLY#{inbound_mid}")
    assert claim["state"] == "sent" and claim["message_ids"] == [mid]
    item = table.get((conversation, f"MSG#{mid}"))
    assert item["record_type"] == "outbound" and item["status"] == status and item["pk"] == conversation
    assert (item["text"], item["in_reply_to"], item["user_id"]) == ("Hello!", inbound_mid, USER_A)


def test_a_timed_out_send_settled_by_its_echo_after_the_give_up_is_recorded_whole_and_delivered(
    providers, stream, stack_env, lambda_context
):
    # Given a send that timed out after the request left, and no echo within the confirmation window (given
    # up as ambiguous)
    ts = now_ms()
    ingest_meta(lambda_context, meta_message("m.to.1", "hello", sender=USER_A, ts=ts))
    providers.mock.remove(responses.POST, re.compile(rf"{re.escape(GRAPH)}/v25\.0/\d+/messages"))
    providers.mock.add_callback(
        responses.POST,
        re.compile(rf"{re.escape(GRAPH)}/v25\.0/\d+/messages"),
        lambda request: (_ for _ in ()).throw(requests.exceptions.ReadTimeout()),
    )
    assert reply(drain(stream), lambda_context) == {"batchItemFailures": []}
    assert stack_env.find("REPLY#m.to.1")["state"] == "ambiguous"
    # When its echo arrives, then Meta's delivery and read events
    ingest_meta(lambda_context, our_echo("m.to.1", "m_echoed_to", ts + 1))
    ingest_meta(lambda_context, *delivery_and_read("m_echoed_to", ts + 2))
    # Then the claim holds the echo's mid and the outbound message is whole and delivered. (Read watermarks
    # find only replies a turn put on the unread list; one confirmed after its give-up is not there:
    # docs/design.md, "Read receipts in bounded reads".)
    assert_whole_reply_read(stack_env, "m.to.1", "m_echoed_to", "delivered")


def test_an_echo_before_the_ambiguous_outcome_is_recorded_whole_and_reaches_read(
    providers, stream, stack_env, lambda_context
):
    # Given the echo of our send reaches the webhook while the reply function still waits, then the send
    # ends unclear
    ts = now_ms()
    ingest_meta(lambda_context, meta_message("m.to.2", "hello", sender=USER_A, ts=ts))
    records = drain(stream)
    providers.meta_faults[USER_A] = (400, AMBIGUOUS_REPLY)
    original = providers._meta

    def echo_then_answer(request):
        ingest_meta(lambda_context, our_echo("m.to.2", "m_echoed_to2", ts + 1))
        return original(request)

    providers.mock.remove(responses.POST, re.compile(rf"{re.escape(GRAPH)}/v25\.0/\d+/messages"))
    providers.mock.add_callback(
        responses.POST, re.compile(rf"{re.escape(GRAPH)}/v25\.0/\d+/messages"), echo_then_answer
    )
    assert reply(records, lambda_context) == {"batchItemFailures": []}
    # When Meta's delivery and read events follow
    ingest_meta(lambda_context, *delivery_and_read("m_echoed_to2", ts + 2))
    # Then the claim holds the echo's mid and the outbound message is whole and read
    assert_whole_reply_read(stack_env, "m.to.2", "m_echoed_to2")


# -- unclear sends: the conversation waits for the confirmation, then goes on --------------------------


def first_sends_time_out(providers: FakeProviders, count: int = 1) -> list[int]:
    """The first `count` Send API requests reach Meta (recorded) and then time out; returns each request's
    time (epoch ms), in order."""
    pattern = re.compile(rf"{re.escape(GRAPH)}/v25\.0/\d+/messages")
    original, times = providers._meta, []

    def callback(request: Any) -> tuple[int, dict, str]:
        times.append(now_ms())
        answer = original(request)
        if len(providers.meta_calls) <= count:
            raise requests.exceptions.ReadTimeout()
        return answer

    providers.mock.remove(responses.POST, pattern)
    providers.mock.add_callback(responses.POST, pattern, callback)
    return times


def answered(providers: FakeProviders) -> list[str]:
    """The inbound message each Send API request answers (from its metadata), in request order."""
    return [c["body"]["message"]["metadata"].removeprefix(f"{BOT_METADATA}:") for c in providers.meta_calls]


def two_messages(lambda_context: Any, stream: StreamReader, prefix: str) -> tuple[int, list[dict[str, Any]]]:
    """User A's messages `<prefix>.1` and `<prefix>.2`, a second ago, stored; their time and stream records."""
    ts = now_ms() - 1_000
    ingest_meta(
        lambda_context,
        meta_message(f"{prefix}.1", "first", sender=USER_A, ts=ts),
        meta_message(f"{prefix}.2", "second", sender=USER_A, ts=ts + 1),
    )
    return ts, drain(stream)


def test_an_unconfirmed_send_is_settled_by_its_echo_while_the_next_message_waits(
    providers, stream, stack_env, lambda_context
):
    # Given two messages of one person, and a first send that times out after the request left
    ts, records = two_messages(lambda_context, stream, "m.uc")
    first_sends_time_out(providers)
    waits: list[float] = []

    def echo_arrives_while_waiting(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:
            # While the first send is unconfirmed its claim says so, and the second message waits
            claim = stack_env.find("REPLY#m.uc.1")
            assert claim["state"] == "unconfirmed" and claim["confirm_by_ms"] > now_ms()
            assert answered(providers) == ["m.uc.1"] and stack_env.find("REPLY#m.uc.2") is None
            ingest_meta(lambda_context, our_echo("m.uc.1", "m_echoed_uc", ts + 2))

    current_pipeline().sleep = echo_arrives_while_waiting
    # When the reply function runs
    assert reply(records, lambda_context) == {"batchItemFailures": []}
    # Then the first send was confirmed by the echo (not sent again), and only then the second was answered
    assert answered(providers) == ["m.uc.1", "m.uc.2"] and len(waits) == 1
    first, second = stack_env.find("REPLY#m.uc.1"), stack_env.find("REPLY#m.uc.2")
    assert (first["state"], first["reconciled_by"], first["message_ids"]) == ("sent", "echo", ["m_echoed_uc"])
    assert second["state"] == "sent" and second["message_ids"] == ["m_2"]
    # And a read receipt (only a watermark) then marks both replies read
    ingest_meta(lambda_context, *delivery_and_read("m_2", now_ms())[1:])
    conversation = conversation_id("meta", PAGE_ID, USER_A)
    assert [stack_env.get((conversation, f"MSG#{m}"))["status"] for m in ("m_echoed_uc", "m_2")] == ["read", "read"]


def test_an_unconfirmed_send_is_given_up_after_the_window_then_the_next_message_is_answered(
    providers, stream, stack_env, lambda_context
):
    # Given two messages of one person, and a first send that times out and is never confirmed
    _, records = two_messages(lambda_context, stream, "m.gu")
    times = first_sends_time_out(providers)
    # When the reply function runs
    assert reply(records, lambda_context) == {"batchItemFailures": []}
    # Then the first is given up as ambiguous once its window closed (never sent again), and the second was
    # answered only after that
    first, second = stack_env.find("REPLY#m.gu.1"), stack_env.find("REPLY#m.gu.2")
    assert first["state"] == "ambiguous" and first["confirm_by_ms"] - times[0] >= CONFIRM_WINDOW_MS
    assert first["settled_at_ms"] >= first["confirm_by_ms"]
    assert second["state"] == "sent"
    assert answered(providers) == ["m.gu.1", "m.gu.2"] and times[1] >= first["confirm_by_ms"]
    # And the records delivered again send nothing
    assert reply(records, lambda_context) == {"batchItemFailures": []}
    assert len(providers.meta_calls) == 2


def test_an_unconfirmed_vonage_send_is_settled_by_its_status_callback_with_our_client_ref(
    providers, stream, stack_env, lambda_context
):
    # Given a Vonage message whose send times out after the request left
    inbound_uuid, sent_uuid = "bbbbbbbb-0000-4000-8000-00000000c0f1", "aaaaaaaa-0000-4000-8000-000000000001"
    body = {
        "channel": "messenger",
        "message_uuid": inbound_uuid,
        "to": PAGE_ID,
        "from": USER_B,
        "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "message_type": "text",
        "text": "thanks!",
    }
    webhook = load_handler("webhook").lambda_handler
    assert webhook(vonage_post("/vonage/inbound", dumps(body)), lambda_context)["statusCode"] == 200
    records = drain(stream)
    original = providers._vonage

    def times_out(request: Any) -> Any:
        original(request)
        raise requests.exceptions.ReadTimeout()

    providers.mock.remove(responses.POST, f"{VONAGE}/v1/messages")
    providers.mock.add_callback(responses.POST, f"{VONAGE}/v1/messages", times_out)

    def status(name: str) -> None:
        callback = {
            "message_uuid": sent_uuid,
            "to": USER_B,
            "from": PAGE_ID,
            "channel": "messenger",
            "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": name,
            "client_ref": inbound_uuid,
        }
        assert webhook(vonage_post("/vonage/status", dumps(callback)), lambda_context)["statusCode"] == 200

    # When Vonage's status callback for that message (it carries our client_ref) comes while the reply waits
    current_pipeline().sleep = lambda seconds: status("submitted")
    assert reply(records, lambda_context) == {"batchItemFailures": []}
    # Then the claim is settled as sent with the message's uuid, and nothing was sent twice
    claim = stack_env.find(f"REPLY#{inbound_uuid}")
    assert (claim["state"], claim["reconciled_by"]) == ("sent", "echo")
    assert claim["message_ids"] == [sent_uuid]
    assert len(providers.vonage_calls) == 1
    outbound = stack_env.find(f"MSG#{sent_uuid}")
    assert (outbound["in_reply_to"], outbound["status"]) == (inbound_uuid, "submitted")
    # And later statuses of the same message move it on without adding ids to the claim
    status("delivered")
    assert stack_env.find(f"REPLY#{inbound_uuid}")["message_ids"] == [sent_uuid]
    assert stack_env.find(f"MSG#{sent_uuid}")["status"] == "delivered"
