"""Shared fixtures. Unit tests need none of the services; integration tests start them once per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# The caller's AWS settings, before they are replaced: only tests/e2e/conftest.py uses them, to discover the
# deployed stack named by AWS_SAM_STACK_NAME (opt-in). Everything else runs on local services.
CALLER_AWS_ENV = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
# Never reach real AWS, whatever the machine's configuration says.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_SERVICE_NAME": "messenger-webhook",
    "POWERTOOLS_METRICS_NAMESPACE": "MessengerWebhook",
    "POWERTOOLS_DEV": "false",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}.items():
    os.environ[_name] = _value
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)

from devkit.lambda_context import LambdaContext  # noqa: E402
from devkit.local_aws import client  # noqa: E402
from local.services import create_events_table, seed_secrets, start_dynamodb_local, start_moto  # noqa: E402
from messenger.config import get_settings  # noqa: E402
from messenger.inbound import routes  # noqa: E402
from messenger.secrets import clear_cache as clear_secret_cache  # noqa: E402


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext("test-function")


def reset_caches() -> None:
    get_settings.cache_clear()
    clear_secret_cache()
    routes.event_store.cache_clear()


@pytest.fixture(autouse=True)
def _clear_caches() -> Iterator[None]:
    reset_caches()
    yield
    reset_caches()


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    service = start_dynamodb_local()
    try:
        yield service.endpoint
    finally:
        service.stop()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    service = start_moto()
    try:
        yield service.endpoint
    finally:
        service.stop()


@pytest.fixture(scope="session")
def dynamodb(dynamodb_endpoint: str) -> Any:
    return client("dynamodb", dynamodb_endpoint)


@pytest.fixture(scope="session")
def secrets(moto_endpoint: str) -> dict[str, str]:
    names = {"meta": "test/meta", "vonage": "test/vonage"}
    seed_secrets(client("secretsmanager", moto_endpoint), names)
    return names


@dataclass
class Table:
    name: str
    stream_arn: str
    client: Any

    def items(self) -> list[dict[str, Any]]:
        from messenger.storage import from_item

        pages = self.client.get_paginator("scan").paginate(TableName=self.name, ConsistentRead=True)
        return [from_item(item) for page in pages for item in page["Items"]]

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        """One item by its (pk, sk) key, e.g. `messenger.storage.codec.event_key(conversation, event_id)`."""
        from messenger.storage.codec import from_item, key_attributes

        item = self.client.get_item(TableName=self.name, Key=key_attributes(key), ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def find(self, sk: str) -> dict[str, Any] | None:
        """The one item with sort key `sk` (e.g. "REPLY#<event id>"; an event as "EVT#<event id>"), whatever
        its conversation."""
        from tests.helpers import event_ref

        found = [item for item in self.items() if event_ref(item["sk"]) == sk]
        assert len(found) <= 1, found
        return found[0] if found else None

    def store(self, retention_days: int = 90) -> Any:
        from messenger.storage import DynamoStore

        return DynamoStore(self.name, client=self.client, retention_days=retention_days)


@pytest.fixture
def table(dynamodb: Any) -> Iterator[Table]:
    name = f"events-{uuid.uuid4().hex[:12]}"
    stream_arn = create_events_table(dynamodb, name)
    yield Table(name, stream_arn, dynamodb)
    dynamodb.delete_table(TableName=name)


@pytest.fixture
def stack_env(
    monkeypatch: pytest.MonkeyPatch,
    table: Table,
    secrets: dict[str, str],
    dynamodb_endpoint: str,
    moto_endpoint: str,
) -> Table:
    """The environment template.yaml gives the functions, pointed at the local services."""
    monkeypatch.setenv("EVENTS_TABLE", table.name)
    monkeypatch.setenv("META_SECRET_ID", secrets["meta"])
    monkeypatch.setenv("VONAGE_SECRET_ID", secrets["vonage"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_endpoint)
    reset_caches()
    return table
