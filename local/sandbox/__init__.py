"""Sandbox providers: a local Graph Send API and Vonage Messages API that validate, record and call back.

- `POST /{version}/{page_id}/messages` (Graph): checks the Page token (and `appsecret_proof` if sent)
  against events/sandbox-secrets.json and the body schema; answers `{"recipient_id", "message_id"}` or a
  Graph error `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`. Then posts a signed
  echo, a delivery and a read event to the webhook's `/meta/webhook`.
- `POST /v1/messages` (Vonage): checks the RS256 application JWT with the public half of the sandbox
  private key and the body schema; answers 202 `{"message_uuid"}` or an RFC 7807 error. Then posts signed
  `submitted`, `delivered` and `read` statuses to `/vonage/status`.
- `GET /_sandbox/requests` (filters: provider, recipient, since) lists every request, `DELETE` clears;
  `GET /_sandbox/callbacks` lists the callbacks sent and the webhook's answers.
- A callback the webhook does not accept is retried as the provider would (META_CALLBACK_RETRY,
  VONAGE_CALLBACK_RETRY), on a schedule compressed `retry_time_scale` times for local use.
- `POST /_sandbox/faults` `{"provider", "fault": "5xx|429|613|timeout|permanent", "code", "count",
  "recipient", "seconds"}` makes the next matching sends fail; `GET` lists, `DELETE` clears.
- The setup APIs `make connect` uses (meta_setup.py, vonage_apps.py): Graph `/{app-id}/subscriptions` (with
  Meta's verify handshake to the callback URL), `/{page-id}/subscribed_apps`, `/me/messenger_profile` (10
  calls per 10 minutes per Page), and Vonage's `GET|PUT /v2/applications/{id}`; `GET /_sandbox/setup` shows
  what they hold, `DELETE /_sandbox/rate-limits` starts a new rate-limit window.

Command line: `python -m local.sandbox fault meta 5xx --count 2`, `... requests`, `... clear`, `... serve`.

Package layout: `meta.py` and `vonage.py` (the two fake providers: validation, faults applied, callbacks built),
`meta_setup.py` and `vonage_apps.py` (their setup APIs), `faults.py` (the fault store), `callbacks.py` (retry
schedules and the signed-callback sender), `state.py` (`Sandbox`: secrets, recorded requests, settings, what the
setup APIs hold), `server.py` (HTTP server and the control route table), `cli.py` (the command line). Imports go
one way: state.py imports none of the modules that act on it (tests/build/test_imports.py checks it).
"""

from local.sandbox.callbacks import CALLBACK_RETRY, META_CALLBACK_RETRY, VONAGE_CALLBACK_RETRY, RetrySchedule
from local.sandbox.common import SandboxReject
from local.sandbox.faults import FAULTS, Fault
from local.sandbox.server import SandboxServer
from local.sandbox.state import Sandbox

__all__ = [
    "CALLBACK_RETRY",
    "FAULTS",
    "META_CALLBACK_RETRY",
    "VONAGE_CALLBACK_RETRY",
    "Fault",
    "RetrySchedule",
    "Sandbox",
    "SandboxReject",
    "SandboxServer",
]
