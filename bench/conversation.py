"""Table reads and writes per answered message and per read receipt, along one long conversation.

    python -m bench.conversation [--messages 200] [--json]

DynamoDB Local and moto (bench.common.local_stack), the sandbox Send API (local/sandbox, in this process,
its own callbacks off) and the real handlers, in this process. One person sends `--messages` messages, one
at a time; after each one the stream poller (the template's settings, one lane) runs the reply function,
then the webhook gets, one by one, the callbacks Meta sends for the reply (local.sandbox.meta.callback_events:
echo, delivery, then a read receipt whose watermark covers the reply). Every DynamoDB call is counted per
step by wrapping botocore (bench.cost.metered: calls, and the capacity units DynamoDB Local reports), so the
figures do not depend on how the layer builds its clients. A step whose cost grows with the conversation's
length shows as a last-10 mean above the first-10 mean.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from typing import Any

from bench.common import local_stack

STEPS = ("inbound", "reply", "echo", "delivered", "read")
LABELS = {
    "inbound": "inbound message stored (webhook)",
    "reply": "answered message (reply function)",
    "echo": "echo of the reply (webhook)",
    "delivered": "delivery of the reply (webhook)",
    "read": "read receipt (webhook)",
}


def _cost(meter: Any) -> dict[str, float]:
    """Calls and capacity units of everything the meter saw since its last reset."""
    from bench.cost import WRITE_OPERATIONS

    cost = {"writes": 0.0, "reads": 0.0, "wru": 0.0, "rru": 0.0}
    with meter.lock:
        for function in meter.functions.values():
            for operation, calls in function.dynamodb_calls.items():
                cost["writes" if operation in WRITE_OPERATIONS else "reads"] += calls
            cost["wru"] += function.wru_table + function.wru_gsi
            cost["rru"] += function.rru_table + function.rru_gsi
        meter.functions.clear()
    return cost


def run(messages: int = 200) -> dict[str, Any]:
    """Per step: the cost of each of the `messages` rounds (a list per measure)."""
    import os

    from bench.cost import Meter, metered
    from devkit import payloads
    from devkit.apigw_events import http_event
    from devkit.lambda_context import LambdaContext
    from devkit.local_aws import client
    from devkit.sandbox_secrets import sandbox_secrets
    from devkit.streams import StreamReader
    from local import workers
    from local.poller import CheckpointStore, StreamPoller
    from local.sandbox import meta as sandbox_meta
    from local.sandbox.server import SandboxServer
    from local.sandbox.state import Sandbox
    from local.services import free_port
    from local.template import function_spec, stream_settings

    secrets = sandbox_secrets()
    page = next(iter(secrets["meta"]["page_tokens"]))
    user = "8100000000000200"
    rounds: dict[str, list[dict[str, float]]] = {step: [] for step in STEPS}
    meter = Meter()
    with local_stack() as stack:
        sandbox = Sandbox(None, log=lambda _: None)
        sandbox.callbacks_enabled = False
        server = SandboxServer(free_port(), sandbox)
        server.start()
        os.environ["GRAPH_API_BASE"] = f"http://127.0.0.1:{server.server_address[1]}"
        stream_arn = client("dynamodb", stack.dynamodb_endpoint).describe_table(TableName=stack.table)["Table"][
            "LatestStreamArn"
        ]
        try:
            with metered(meter):
                webhook_spec, reply_spec = function_spec("WebhookFunction"), function_spec("ReplyFunction")
                webhook, reply = workers.load_handler(webhook_spec), workers.load_handler(reply_spec)

                def post(event: dict[str, Any]) -> None:
                    body, headers = payloads.signed_meta(payloads.meta_page(event, page_id=page), secrets["meta"])
                    request = http_event("POST", "/meta/webhook", body, {"content-type": "application/json", **headers})
                    answer = webhook(request, LambdaContext(webhook_spec.function_id))
                    if answer["statusCode"] != 200:
                        raise RuntimeError(f"the webhook answered {answer['statusCode']}")

                settings = replace(stream_settings(), batching_window_s=0, parallelization_factor=1)
                reader = StreamReader(client("dynamodbstreams", stack.dynamodb_endpoint), stream_arn)
                poller = StreamPoller(
                    reader,
                    lambda event: reply(event, LambdaContext(reply_spec.function_id, reply_spec.timeout_s)),
                    settings,
                    CheckpointStore(stream_arn),
                    log=lambda _: None,
                )
                for n in range(messages):
                    _cost(meter)
                    now = payloads.now_ms()
                    post(payloads.meta_message(user, page, now, message={"mid": f"m_conv_{n}", "text": "hi"}))
                    rounds["inbound"].append(_cost(meter))
                    seen = len(sandbox.list_requests())
                    poller.drain()
                    rounds["reply"].append(_cost(meter))
                    sent = [r for r in sandbox.list_requests()[seen:] if r.get("status") == 200]
                    if len(sent) != 1:
                        raise RuntimeError(f"message {n} was answered by {len(sent)} sends")
                    mid, message = sent[0]["response"]["message_id"], sent[0]["body"]["message"]
                    for kind, event in sandbox_meta.callback_events(page, user, mid, message, payloads.now_ms()):
                        post(event)
                        rounds[kind].append(_cost(meter))
        finally:
            server.stop()
    return rounds


def summary(rounds: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per step and measure: the mean over all rounds, over the first 10 and over the last 10."""
    result: dict[str, dict[str, float]] = {}
    for step, costs in rounds.items():
        for measure in ("writes", "reads", "wru", "rru"):
            values = [cost[measure] for cost in costs]
            result.setdefault(step, {}).update(
                {
                    measure: round(statistics.mean(values), 2),
                    f"{measure}_first10": round(statistics.mean(values[:10]), 2),
                    f"{measure}_last10": round(statistics.mean(values[-10:]), 2),
                }
            )
    loop = {k: round(sum(result[step][k] for step in STEPS), 2) for k in result["reply"]}
    result["loop"] = loop
    return result


def render(result: dict[str, dict[str, float]], messages: int) -> str:
    header = f"{'per ...':38} {'writes':>7} {'reads':>7} {'WRU':>7} {'RRU':>7}   {'reads first/last 10':>19}"
    header += f" {'RRU first/last 10':>18}"
    lines = [f"table calls along one {messages}-message conversation (means over its messages)", header]
    for step in (*STEPS, "loop"):
        row = result[step]
        label = LABELS.get(step, "whole loop: message, reply, 3 callbacks")
        lines.append(
            f"{label:38} {row['writes']:>7} {row['reads']:>7} {row['wru']:>7} {row['rru']:>7}   "
            f"{row['reads_first10']:>8} / {row['reads_last10']:<8} {row['rru_first10']:>8} / {row['rru_last10']:<8}"
        )
    read = result["read"]
    growth = round(read["rru_last10"] / read["rru_first10"], 2) if read["rru_first10"] else 0.0
    goals = [
        # 3 (claim, outbound message, settle) + the turn's 2 (lease, cursor): docs/design.md, "Ordering"
        ("table writes per answered message (3 + the turn's 2)", result["reply"]["writes"], "<=", 5),
        ("table reads per answered message (reply function)", result["reply"]["reads"], "<=", 1),
        ("read units per read receipt, last 10 / first 10 messages", growth, "<=", 1.5),
    ]
    lines.append("")
    for name, value, op, goal in goals:
        ok = value <= goal
        lines.append(f"{name:58} {value:>8} {op} {goal:<5} {'PASS' if ok else 'MISS'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(prog="python -m bench.conversation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = summary(run(args.messages))
    print(json.dumps(result, indent=2) if args.json else render(result, args.messages))
    return result


if __name__ == "__main__":
    main()
