"""Check a deployed stack from outside, as Meta and Vonage call it (`make smoke`).

    AWS_SAM_STACK_NAME=messenger-webhook AWS_REGION=eu-west-1 python -m tools.smoke

The stack's outputs (CloudFormation DescribeStacks) give the webhook URLs and the secret ARNs; the secrets
(Secrets Manager) give the verify token and the signing keys. Then, over HTTPS:

1. the Meta verify handshake with the real verify token answers the challenge (and a wrong token 403);
2. a signed Meta POST of a synthetic echo (our own bot marker, a user id no Page can have) is stored, and
   stored once when re-sent; an echo is never answered, so nothing reaches anybody;
3. the same body with a bad signature is refused;
4. a signed Vonage status for a message that does not exist is accepted (it updates nothing);
5. an unsigned Vonage callback is answered 503 (so Vonage would re-send it signed). It is one
   `UnsignedCallbacks`: under the alarm's threshold, and left out of the webhook 5xx alarm.

Nothing here sends a message: the checks only call the webhook, which never calls a provider, with events
the reply function never answers. Secret values are never printed; the output names statuses and codes.
Exit status 0 when every check passes, 1 otherwise, 2 when the stack cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from devkit.http_client import http
from devkit.lambda_code import add_layers_to_path

add_layers_to_path()
from devkit import payloads  # noqa: E402
from messenger.handover import BOT_METADATA  # noqa: E402 - needs the layer on sys.path

META_KEYS = ("app_secret", "verify_token", "page_tokens")
OUTPUTS = ("MetaWebhookUrl", "VonageInboundUrl", "VonageStatusUrl", "MetaSecretArn", "VonageSecretArn")


class SmokeError(RuntimeError):
    """The stack or its secrets cannot be read (the message never holds a secret value)."""


@dataclass(frozen=True)
class Secret:
    """A secret's JSON value; its repr shows the keys only, so it can never be printed by accident."""

    values: dict[str, Any] = field(repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __repr__(self) -> str:
        return f"Secret(keys={sorted(self.values)})"


@dataclass(frozen=True)
class Deployment:
    """What the checks need from a deployed stack: its webhook URLs and the two secrets."""

    stack_name: str
    outputs: dict[str, str]
    meta: Secret
    vonage: Secret

    @property
    def meta_webhook_url(self) -> str:
        return self.outputs["MetaWebhookUrl"]

    @property
    def vonage_inbound_url(self) -> str:
        return self.outputs["VonageInboundUrl"]

    @property
    def vonage_status_url(self) -> str:
        return self.outputs["VonageStatusUrl"]

    @property
    def page_id(self) -> str:
        """A Page of the secret (its echoes look real), or a synthetic id while page_tokens is empty."""
        return next(iter(self.meta["page_tokens"] or {}), "0")


def stack_outputs(stack_name: str, cloudformation: Any) -> dict[str, str]:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise SmokeError(f"cannot describe stack {stack_name!r}: {type(exc).__name__}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [name for name in OUTPUTS if name not in outputs]
    if missing:
        raise SmokeError(f"stack {stack_name!r} has no output(s) {', '.join(missing)}: is it this template's stack?")
    return outputs


def read_secret(secret_id: str, secretsmanager: Any, keys: tuple[str, ...]) -> Secret:
    try:
        value = json.loads(secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"])
    except (ClientError, BotoCoreError) as exc:
        raise SmokeError(f"cannot read secret {secret_id}: {type(exc).__name__}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise SmokeError(f"secret {secret_id} is not a JSON string") from exc
    if not isinstance(value, dict) or not all(key in value for key in keys):
        raise SmokeError(f"secret {secret_id} lacks one of the keys {', '.join(keys)}")
    if "REPLACE_ME" in value.values():
        raise SmokeError(f"secret {secret_id} still holds the placeholder values: put the real ones (docs/deploy.md)")
    return Secret(value)


def open_stack(
    stack_name: str | None = None, region: str | None = None, session: Any = None
) -> tuple[str, dict[str, str], Any]:
    """The deployed stack named by AWS_SAM_STACK_NAME (region from AWS_REGION): its name, its outputs, and a
    Secrets Manager client in its region.

    boto3's standard AWS_ENDPOINT_URL_* variables apply, which is how the tests point this at moto.
    """
    stack_name = stack_name or os.environ.get("AWS_SAM_STACK_NAME")
    if not stack_name:
        raise SmokeError("set AWS_SAM_STACK_NAME to the deployed stack's name (and AWS_REGION to its region)")
    session = session or boto3.session.Session(region_name=region or os.environ.get("AWS_REGION") or None)
    if not session.region_name:
        raise SmokeError("set AWS_REGION to the region of the stack")
    return stack_name, stack_outputs(stack_name, session.client("cloudformation")), session.client("secretsmanager")


def discover(stack_name: str | None = None, region: str | None = None, session: Any = None) -> Deployment:
    """The deployed stack named by AWS_SAM_STACK_NAME (region from AWS_REGION), through its outputs."""
    stack_name, outputs, secretsmanager = open_stack(stack_name, region, session)
    meta = read_secret(outputs["MetaSecretArn"], secretsmanager, META_KEYS)
    vonage = read_secret(outputs["VonageSecretArn"], secretsmanager, ("signature_secret", "api_key"))
    return Deployment(stack_name, outputs, meta, vonage)


def webhook_outputs(api: str) -> dict[str, str]:
    """The webhook outputs of a stack whose HTTP API is at `api` (how the local stack stands in for one)."""
    api = api.rstrip("/")
    return {
        "MetaWebhookUrl": f"{api}/meta/webhook",
        "VonageInboundUrl": f"{api}/vonage/inbound",
        "VonageStatusUrl": f"{api}/vonage/status",
        "HttpApiUrl": api,
    }


# -- the checks ----------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    ok: bool
    detail: str


def synthetic_user() -> str:
    """Not a PSID (those are digits only): no real person can be this user."""
    return f"smoke-{uuid.uuid4().hex[:16]}"


def check_verify_handshake(d: Deployment) -> Result:
    challenge = str(secrets.randbelow(10**9))
    query = urllib.parse.urlencode(
        {"hub.mode": "subscribe", "hub.verify_token": d.meta["verify_token"], "hub.challenge": challenge}
    )
    status, body = http("GET", f"{d.meta_webhook_url}?{query}")
    wrong = urllib.parse.urlencode(
        {"hub.mode": "subscribe", "hub.verify_token": "smoke-" + uuid.uuid4().hex, "hub.challenge": challenge}
    )
    wrong_status, _ = http("GET", f"{d.meta_webhook_url}?{wrong}")
    ok = status == 200 and str(body) == challenge and wrong_status == 403
    return Result(
        "Meta verify handshake",
        ok,
        f"real token: {status}, challenge "
        f"{'echoed' if str(body) == challenge else 'NOT echoed'}; wrong token: {wrong_status}",
    )


def meta_echo_body(d: Deployment, user: str) -> bytes:
    now = payloads.now_ms()
    echo = payloads.meta_message(
        d.page_id,
        user,
        now,
        message={
            "mid": f"m_smoke_{uuid.uuid4().hex}",
            "is_echo": True,
            "metadata": BOT_METADATA,
            "text": "messenger-webhook smoke check (synthetic echo, never answered)",
        },
    )
    return payloads.encode(payloads.meta_page(echo, page_id=d.page_id, time_ms=now))


def check_meta_echo_stored_once(d: Deployment, body: bytes) -> Result:
    headers = payloads.meta_headers(d.meta, body)
    first = http("POST", d.meta_webhook_url, body, headers)
    again = http("POST", d.meta_webhook_url, body, headers)
    ok = first == (200, {"stored": 1, "duplicates": 0}) and again == (200, {"stored": 0, "duplicates": 1})
    return Result("signed Meta echo stored once", ok, f"first: {first[0]} {first[1]}; re-sent: {again[0]} {again[1]}")


def check_bad_signature_refused(d: Deployment, body: bytes) -> Result:
    status, answer = http("POST", d.meta_webhook_url, body, {"x-hub-signature-256": "sha256=" + "0" * 64})
    return Result("bad Meta signature refused", status in (401, 403), f"{status} {answer}")


def vonage_status_body(d: Deployment, user: str) -> bytes:
    return payloads.encode(
        {
            "channel": "messenger",
            "message_uuid": str(uuid.uuid4()),
            "to": user,
            "from": d.page_id,
            "timestamp": payloads.vonage_time(),
            "status": "delivered",
        }
    )


def check_vonage_status_unknown_message(d: Deployment, body: bytes) -> Result:
    status, answer = http("POST", d.vonage_status_url, body, payloads.vonage_headers(d.vonage, body))
    return Result("signed Vonage status for an unknown message", status == 200, f"{status} {answer}")


def check_unsigned_vonage_callback(d: Deployment, body: bytes) -> Result:
    status, answer = http("POST", d.vonage_status_url, body)
    ok = status == 503 and isinstance(answer, dict) and answer.get("error") == "unsigned_callback"
    return Result("unsigned Vonage callback answered 503", ok, f"{status} {answer}")


def run_checks(d: Deployment) -> list[Result]:
    user = synthetic_user()
    meta_body, status_body = meta_echo_body(d, user), vonage_status_body(d, user)
    checks: list[tuple[str, Callable[[], Result]]] = [
        ("Meta verify handshake", lambda: check_verify_handshake(d)),
        ("signed Meta echo stored once", lambda: check_meta_echo_stored_once(d, meta_body)),
        ("bad Meta signature refused", lambda: check_bad_signature_refused(d, meta_body)),
        ("signed Vonage status for an unknown message", lambda: check_vonage_status_unknown_message(d, status_body)),
        ("unsigned Vonage callback answered 503", lambda: check_unsigned_vonage_callback(d, status_body)),
    ]
    results = []
    for name, check in checks:
        try:
            results.append(check())
        except OSError as exc:  # unreachable URL, TLS, timeout: only the error class, never a header or secret
            results.append(Result(name, False, f"request failed: {type(exc).__name__}"))
    return results


def main(argv: list[str] | None = None, out: Any = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="python -m tools.smoke", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack-name", default=None, help="default: AWS_SAM_STACK_NAME")
    parser.add_argument("--region", default=None, help="default: AWS_REGION")
    args = parser.parse_args(argv)
    try:
        deployment = discover(args.stack_name, args.region)
    except SmokeError as exc:
        print(f"smoke: {exc}", file=out)
        return 2
    print(f"smoke: stack {deployment.stack_name}, webhook {deployment.meta_webhook_url}", file=out)
    results = run_checks(deployment)
    for result in results:
        print(f"{'PASS' if result.ok else 'FAIL'}  {result.name}: {result.detail}", file=out)
    failed = sum(not r.ok for r in results)
    print(f"smoke: {len(results) - failed} passed, {failed} failed", file=out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
