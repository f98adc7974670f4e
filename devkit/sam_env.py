"""The `sam local --env-vars` file (events/env.json's shape) that points both functions at a local stack."""

from __future__ import annotations


def function_env(dynamodb: str, moto: str, sandbox: str) -> dict[str, str]:
    """`sam local --env-vars` values that point both functions at a local stack.

    Only variables the template declares: SAM CLI ignores the others, and the AWS_ACCESS_KEY_ID/AWS_REGION
    family is reserved by Lambda (SAM passes the shell's own; DynamoDB Local runs with -sharedDb so any key
    sees the same tables).
    """
    return {
        "EVENTS_TABLE": "messenger-events",
        "META_SECRET_ID": "local/meta",
        "VONAGE_SECRET_ID": "local/vonage",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto,
        "AWS_ENDPOINT_URL_SQS": moto,
        "GRAPH_API_BASE": sandbox,
        "VONAGE_API_BASE": sandbox,
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


def env_json(dynamodb: str, moto: str, sandbox: str) -> dict[str, dict[str, str]]:
    """The whole --env-vars file: the same values for both functions."""
    env = function_env(dynamodb, moto, sandbox)
    return {"WebhookFunction": dict(env), "ReplyFunction": dict(env)}
