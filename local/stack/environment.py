"""Both functions' environment in the local stack: the template's variables resolved to the local services and
the sandbox, plus the AWS endpoints and fixed local credentials (a worker never sees the caller's AWS profile)."""

from __future__ import annotations

import os

from devkit.local_aws import LOCAL_CREDENTIALS, REGION
from local.stack.settings import SECRET_NAMES, TABLE_NAME, Log
from local.template import function_environment, http_routes, stream_function_id

DROPPED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")


def stack_environment(
    *, dynamodb_url: str, moto_url: str, sandbox_url: str, queue_url: str, log: Log
) -> dict[str, str]:
    """Both functions' template environment, resolved to the local stack, plus AWS endpoints."""
    resolve = {
        "EventsTable": TABLE_NAME,
        "MetaSecret": SECRET_NAMES["meta"],
        "VonageSecret": SECRET_NAMES["vonage"],
        "GraphApiBase": sandbox_url,
        "VonageApiBase": sandbox_url,
        "ReplyFailureQueue": queue_url,
        "ReplyFailureQueue.Arn": f"arn:aws:sqs:{REGION}:000000000000:ReplyFailureQueue",
    }
    if os.environ.get("LOG_LEVEL"):
        resolve["LogLevel"] = os.environ["LOG_LEVEL"]
    env: dict[str, str] = {}
    for function_id in {route.function_id for route in http_routes()} | {stream_function_id()}:
        for name, value in function_environment(function_id, resolve).items():
            if name in env and env[name] != value:
                log(f"warning: {name} differs between functions; the local stack uses {env[name]!r}")
                continue
            env[name] = value
    env.update(LOCAL_CREDENTIALS)
    env.update(
        {
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": dynamodb_url,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_url,
            "AWS_ENDPOINT_URL_SQS": moto_url,
            "POWERTOOLS_TRACE_DISABLED": "true",
            # EMF metric blobs on every invocation drown the useful lines; LOCAL_METRICS=1 shows them.
            "POWERTOOLS_METRICS_DISABLED": "false" if os.environ.get("LOCAL_METRICS") else "true",
        }
    )
    return env


def worker_environment(stack_env: dict[str, str]) -> dict[str, str]:
    """A worker process's whole environment: this process's, without the caller's AWS profile, plus the stack's."""
    base = {k: v for k, v in os.environ.items() if k not in DROPPED}
    return {**base, **stack_env}
