"""`make connect` (tools/connect) against the sandbox's setup edges, in-process: what it sets, that a second run
changes nothing, drift, each refusal, and that no secret reaches its output.

The stack is the local one's stand-in: a state file naming a webhook stub (it answers Meta's verify handshake
as the real route does) and the sandbox, and the two secrets in moto's Secrets Manager; or a CloudFormation
stack in moto (the deployed path, with GRAPH_API_BASE and VONAGE_API_BASE at the sandbox).
"""

from __future__ import annotations

import copy
import io
import json
import time
import uuid
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from devkit.http_client import http
from devkit.local_aws import client
from devkit.messenger_profile import PROFILE_FILE
from devkit.sandbox_secrets import SANDBOX_API_SECRET, SANDBOX_APP_ID
from local.api_server import BackgroundHTTPServer
from local.sandbox import Sandbox, SandboxServer
from tests.helpers import META, PAGE_ID, VONAGE, assert_no_secret_in
from tools.connect import cli
from tools.connect.api import Caller
from tools.connect.plan import WEBHOOK_FIELDS

pytestmark = pytest.mark.integration

PROFILE = json.loads(PROFILE_FILE.read_text(encoding="utf-8"))
PAGE_TOKEN = META["page_tokens"][PAGE_ID]


class _Verify(BaseHTTPRequestHandler):
    """Meta's verify handshake as GET /meta/webhook answers it: the challenge when the token matches, else 403."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        ok = query.get("hub.mode") == "subscribe" and query.get("hub.verify_token") == self.server.verify_token
        body = query.get("hub.challenge", "").encode() if ok else b"Forbidden"
        self.server.handshakes += 1
        self.send_response(200 if ok else 403)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def webhook() -> Iterator[Any]:
    server = BackgroundHTTPServer(("127.0.0.1", 0), _Verify)
    server.verify_token, server.handshakes = META["verify_token"], 0  # type: ignore[attr-defined]
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox() -> Iterator[tuple[Sandbox, str]]:
    state = Sandbox(None, log=lambda _line: None)
    server = SandboxServer(0, state)
    server.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.stop()


@pytest.fixture
def local_stack(
    webhook: Any, sandbox: tuple[Sandbox, str], moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Sandbox, str, str]:
    """A state file as `make dev` writes it, its secrets in moto: what `--local` finds."""
    state, sandbox_url = sandbox
    api = f"http://127.0.0.1:{webhook.server_address[1]}"
    run = uuid.uuid4().hex[:8]
    secretsmanager = client("secretsmanager", moto_endpoint)
    names = {provider: f"connect-{run}/{provider}" for provider in ("meta", "vonage")}
    for provider, value in (("meta", META), ("vonage", VONAGE)):
        secretsmanager.create_secret(Name=names[provider], SecretString=json.dumps(value))
    port = webhook.server_address[1]
    info = {"api": api, "sandbox": sandbox_url, "moto": moto_endpoint, "secrets": names, "region": "us-east-1"}
    (tmp_path / f"stack-{port}.json").write_text(json.dumps(info))
    monkeypatch.setenv("LOCAL_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("PORT", str(port))
    return state, sandbox_url, api


def connect(*args: str, answer: str | None = None) -> tuple[int, str]:
    out = io.StringIO()
    ask = (lambda _prompt: answer) if answer is not None else None
    code = cli.main(list(args), out=out, ask=ask, caller=Caller(sleep=lambda _s: None))
    text = out.getvalue()
    assert_no_secret_in(text)
    return code, text


def writes(state: Sandbox) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in state.list_requests() if r["method"] != "GET"]


def test_connect_sets_everything_and_a_second_run_changes_nothing(local_stack: tuple[Sandbox, str, str]) -> None:
    state, _, api = local_stack
    # When make connect runs against the local stack
    code, text = connect("--local", "--yes")
    # Then it applied one write per setting: app subscription, Page subscription, profile, Vonage application
    assert code == 0, text
    assert "plan: 7 to change, 0 in sync, 0 skipped" in text and "applied 4 of 4 change(s)" in text
    assert writes(state) == [
        f"POST /v25.0/{SANDBOX_APP_ID}/subscriptions",
        f"POST /v25.0/{PAGE_ID}/subscribed_apps",
        "POST /v25.0/me/messenger_profile",
        f"PUT /v2/applications/{VONAGE['application_id']}",
    ]
    setup = state.setup()
    assert setup["meta"]["subscriptions"]["page"] == {
        "callback_url": f"{api}/meta/webhook",
        "fields": list(WEBHOOK_FIELDS),
    }
    assert setup["meta"]["page_fields"][PAGE_ID] == list(WEBHOOK_FIELDS)
    profile = setup["meta"]["profiles"][PAGE_ID]
    assert {key: profile[key] for key in ("get_started", "greeting", "ice_breakers")} == {
        key: PROFILE[key] for key in ("get_started", "greeting", "ice_breakers")
    }
    assert profile["persistent_menu"][0]["call_to_actions"] == PROFILE["persistent_menu"][0]["call_to_actions"]
    messages = setup["vonage"]["application"]["capabilities"]["messages"]
    assert messages == {
        "version": "v1",
        "webhooks": {
            "inbound_url": {"address": f"{api}/vonage/inbound", "http_method": "POST"},
            "status_url": {"address": f"{api}/vonage/status", "http_method": "POST"},
        },
    }
    # And the sandbox's verify-token field was never recorded in clear
    recorded = json.dumps(state.list_requests())
    assert META["verify_token"] not in recorded and PAGE_TOKEN not in recorded
    # When it runs again
    before = len(state.list_requests())
    code, text = connect("--local", "--yes")
    # Then it only read, and said so
    assert code == 0, text
    assert "plan: 0 to change, 7 in sync" in text and "nothing to change: every setting already matches" in text
    assert [r["method"] for r in state.list_requests()[before:]] == ["GET", "GET", "GET", "GET"]
    code, text = connect("--local", "--check")
    assert (code, "no drift" in text) == (0, True)


def test_check_reports_drift_made_outside_and_a_run_repairs_it(local_stack: tuple[Sandbox, str, str]) -> None:
    state, sandbox_url, _ = local_stack
    assert connect("--local", "--yes")[0] == 0
    # Given someone unsubscribed the Page from message_echoes and edited the menu in the Page inbox
    query = f"access_token={PAGE_TOKEN}"
    fields = ",".join(f for f in WEBHOOK_FIELDS if f != "message_echoes")
    assert (
        http(
            "POST",
            f"{sandbox_url}/v25.0/{PAGE_ID}/subscribed_apps?{query}",
            json.dumps({"subscribed_fields": fields}).encode(),
        )[0]
        == 200
    )
    menu = copy.deepcopy(PROFILE["persistent_menu"])
    menu[0]["call_to_actions"][0]["title"] = "Menu"
    assert (
        http(
            "POST", f"{sandbox_url}/v25.0/me/messenger_profile?{query}", json.dumps({"persistent_menu": menu}).encode()
        )[0]
        == 200
    )
    before = len(state.list_requests())
    # When connect --check runs
    code, text = connect("--local", "--check")
    # Then it names both, exits 1 and changes nothing
    assert code == 1, text
    assert "drift: 2 setting(s) differ" in text
    assert f"change  Page {PAGE_ID}: subscribed to app {SANDBOX_APP_ID}" in text
    assert f"change  Page {PAGE_ID}: Messenger profile persistent_menu" in text
    assert "message_echoes" not in text.split(f"subscribed to app {SANDBOX_APP_ID}")[1].split("wanted:")[0]
    assert all(r["method"] == "GET" for r in state.list_requests()[before:])
    # When connect runs, then both are repaired and the check passes again
    code, text = connect("--local", "--yes")
    assert code == 0 and "applied 2 of 2 change(s)" in text, text
    assert connect("--local", "--check")[0] == 0


def test_a_callback_that_fails_the_verify_handshake_is_not_subscribed(
    local_stack: tuple[Sandbox, str, str], webhook: Any
) -> None:
    state, _, _ = local_stack
    # Given a webhook whose verify token is not the secret's (the secret was changed, the stack not updated)
    webhook.verify_token = "another-token"
    # When connect runs
    code, text = connect("--local", "--yes")
    # Then Meta's handshake was made and failed: the app is not subscribed, the other steps still ran
    assert code == 1, text
    assert webhook.handshakes == 1
    assert (
        f"failed  Meta app {SANDBOX_APP_ID}: Page webhooks: Meta could not verify the callback URL (Graph code 2200)"
        in text
    )
    assert "HTTP Status Code = 403" in text and "applied 3 of 4 change(s)" in text
    assert state.setup()["meta"]["subscriptions"] == {}


def test_a_callback_nobody_answers_fails_the_subscription(local_stack: tuple[Sandbox, str, str], webhook: Any) -> None:
    state, _, _ = local_stack
    webhook.stop()  # the stack's API is down
    code, text = connect("--local", "--yes")
    assert code == 1 and "Meta could not verify the callback URL (Graph code 2200)" in text, text
    assert "the URL couldn't be reached (ConnectionRefusedError)" in text
    assert state.setup()["meta"]["subscriptions"] == {}


def test_an_invalid_profile_file_stops_before_any_call(local_stack: tuple[Sandbox, str, str], tmp_path: Path) -> None:
    state, _, _ = local_stack
    bad = copy.deepcopy(PROFILE)
    bad["greeting"][0]["text"] = "x" * 161
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(bad))
    code, text = connect("--local", "--yes", "--profile", str(path))
    assert code == 2 and "greeting[0].text has 161 characters; Meta's limit is 160" in text
    assert state.list_requests() == []


def test_the_profile_rate_limit_says_how_long_to_wait(local_stack: tuple[Sandbox, str, str]) -> None:
    state, _, _ = local_stack
    # Given the Page made its 10 profile calls 4 minutes ago
    state.meta_setup.profile_calls[PAGE_ID] = deque([time.time() - 240] * 10)
    # When connect runs, then the profile cannot be read, with the time to wait; everything else is applied
    code, text = connect("--local", "--yes")
    assert code == 1, text
    assert "rate limited by Meta (Graph code 613): wait 6 minutes, then run again" in text
    assert "applied 3 of 3 change(s)" in text


def test_nothing_is_applied_without_a_yes(local_stack: tuple[Sandbox, str, str]) -> None:
    state, _, _ = local_stack
    code, text = connect("--local", answer="n")
    assert code == 1 and "not applied" in text and writes(state) == []


def deployed_stack(moto_endpoint: str, api: str, meta: dict[str, Any], vonage: dict[str, Any]) -> str:
    """A CloudFormation stack in moto with the template's outputs, its webhook at `api`."""
    run = uuid.uuid4().hex[:8]
    secretsmanager = client("secretsmanager", moto_endpoint)
    arns = {
        name: secretsmanager.create_secret(Name=f"{run}/{name}", SecretString=json.dumps(value))["ARN"]
        for name, value in (("meta", meta), ("vonage", vonage))
    }
    outputs = {
        "MetaWebhookUrl": f"{api}/meta/webhook",
        "VonageInboundUrl": f"{api}/vonage/inbound",
        "VonageStatusUrl": f"{api}/vonage/status",
        "MetaSecretArn": arns["meta"],
        "VonageSecretArn": arns["vonage"],
    }
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    name = f"connect-{run}"
    client("cloudformation", moto_endpoint).create_stack(StackName=name, TemplateBody=json.dumps(template))
    return name


@pytest.fixture
def deployed_env(moto_endpoint: str, sandbox: tuple[Sandbox, str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("GRAPH_API_BASE", sandbox[1])
    monkeypatch.setenv("VONAGE_API_BASE", sandbox[1])
    for name in ("META_APP_ID", "VONAGE_API_SECRET", "AWS_SAM_STACK_NAME"):
        monkeypatch.delenv(name, raising=False)
    return moto_endpoint


def test_a_deployed_stack_takes_the_app_id_and_api_secret_from_optional_secret_keys(
    deployed_env: str, webhook: Any, sandbox: tuple[Sandbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = sandbox
    api = f"http://127.0.0.1:{webhook.server_address[1]}"
    meta = {**META, "app_id": str(SANDBOX_APP_ID)}
    vonage = {**VONAGE, "api_secret": SANDBOX_API_SECRET}
    monkeypatch.setenv("AWS_SAM_STACK_NAME", deployed_stack(deployed_env, api, meta, vonage))
    code, text = connect("--yes")
    assert code == 0 and "applied 4 of 4 change(s)" in text, text
    assert SANDBOX_API_SECRET not in text
    assert connect("--check")[0] == 0


def test_without_an_api_secret_or_app_id_those_steps_are_skipped_and_say_why(
    deployed_env: str, webhook: Any, sandbox: tuple[Sandbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = sandbox
    api = f"http://127.0.0.1:{webhook.server_address[1]}"
    monkeypatch.setenv("AWS_SAM_STACK_NAME", deployed_stack(deployed_env, api, META, VONAGE))
    # When connect runs with the fixed secret shapes only (no app id, no API secret anywhere)
    code, text = connect("--yes")
    # Then the profile is applied, and the app subscription and the Vonage application are skipped with the fix
    assert code == 0, text
    assert cli.NO_APP_ID in text and cli.NO_API_SECRET in text
    assert "applied 1 of 1 change(s)" in text
    assert writes(state) == ["POST /v25.0/me/messenger_profile"]
    # And with VONAGE_API_SECRET set (and a wrong one first), the Vonage step runs
    monkeypatch.setenv("VONAGE_API_SECRET", "not-the-secret")
    code, text = connect("--yes")
    assert code == 1 and "Vonage refused the API key and secret (401)" in text and "not-the-secret" not in text
    monkeypatch.setenv("VONAGE_API_SECRET", SANDBOX_API_SECRET)
    assert connect("--yes")[0] == 0
