"""`python -m local.sandbox fault meta 5xx --count 2`, `... faults`, `... requests`, `... clear`, `... serve`."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any
from urllib.parse import urlencode

from devkit.http_client import http
from local.sandbox.faults import FAULTS
from local.sandbox.server import SandboxServer
from local.sandbox.state import Sandbox

DESCRIPTION = "Sandbox providers: a local Graph Send API and Vonage Messages API that validate, record and call back."


def _default_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('SANDBOX_PORT', '3001')}"


def _call(method: str, url: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    try:
        status, answer = http(method, url, data, timeout=10)
    except OSError as exc:
        raise SystemExit(f"cannot reach the sandbox at {url} ({exc}); is `make dev` running?") from None
    if status >= 400:
        text = answer if isinstance(answer, str) else json.dumps(answer)
        raise SystemExit(f"sandbox answered {status}: {text}")
    return answer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.sandbox", description=DESCRIPTION)
    parser.add_argument("--url", default=_default_url(), help="sandbox base URL (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    fault = commands.add_parser("fault", help="make the next send(s) of a provider fail")
    fault.add_argument("provider", choices=["meta", "vonage"])
    fault.add_argument("fault", choices=sorted(FAULTS))
    fault.add_argument("--count", type=int, default=1)
    fault.add_argument(
        "--code", type=int, help="Graph error code (permanent: 10, 100, 190, 200, 551) or Vonage HTTP status"
    )
    fault.add_argument("--recipient", help="only sends to this PSID")
    fault.add_argument("--seconds", type=float, default=20.0, help="timeout fault: how long to hold the request")
    fault.add_argument("--url", default=argparse.SUPPRESS)
    faults = commands.add_parser("faults", help="list (or --clear) pending faults")
    faults.add_argument("--clear", action="store_true")
    faults.add_argument("--url", default=argparse.SUPPRESS)
    requests = commands.add_parser("requests", help="print the recorded requests as JSON")
    requests.add_argument("--provider", choices=["meta", "vonage"])
    requests.add_argument("--url", default=argparse.SUPPRESS)
    clear = commands.add_parser("clear", help="forget the recorded requests and callbacks")
    clear.add_argument("--url", default=argparse.SUPPRESS)
    serve = commands.add_parser("serve", help="run the sandbox on its own")
    serve.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", 3001)))
    serve.add_argument("--webhook", default=f"http://127.0.0.1:{os.environ.get('PORT', '3000')}")
    serve.add_argument(
        "--retry-time-scale",
        type=float,
        default=60.0,
        help="run the providers' callback retry schedules this many times faster (default: 60)",
    )
    serve.add_argument("--callback-delay", type=float, default=0.2, help="seconds between a send's callbacks")
    return parser


def _serve(args: argparse.Namespace) -> None:
    sandbox = Sandbox(args.webhook, callback_delay_s=args.callback_delay, retry_time_scale=args.retry_time_scale)
    server = SandboxServer(args.port, sandbox)
    print(f"sandbox providers on http://127.0.0.1:{args.port} (callbacks to {args.webhook}); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    base = args.url.rstrip("/")
    if args.command == "fault":
        spec = {
            "provider": args.provider,
            "fault": args.fault,
            "count": args.count,
            "code": args.code,
            "recipient": args.recipient,
            "seconds": args.seconds,
        }
        print(json.dumps(_call("POST", f"{base}/_sandbox/faults", spec)))
    elif args.command == "faults":
        print(json.dumps(_call("DELETE" if args.clear else "GET", f"{base}/_sandbox/faults"), indent=2))
    elif args.command == "requests":
        query = f"?{urlencode({'provider': args.provider})}" if args.provider else ""
        print(json.dumps(_call("GET", f"{base}/_sandbox/requests{query}"), indent=2))
    elif args.command == "clear":
        print(json.dumps(_call("DELETE", f"{base}/_sandbox/requests")))
    else:
        _serve(args)
    return 0
