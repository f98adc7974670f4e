"""The local stack keeps its table across restarts, and says so when the template no longer fits it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from local.services import LocalStackError, ensure_events_table
from local.template import table_definition


def test_a_kept_table_is_reused_with_its_stream_and_data(dynamodb: Any) -> None:
    name = f"kept-{uuid.uuid4().hex[:8]}"
    stream_arn, created = ensure_events_table(dynamodb, name)
    key = {k["AttributeName"]: {"S": "kept"} for k in table_definition(name)["KeySchema"]}  # whatever the keys are
    dynamodb.put_item(TableName=name, Item=key)
    try:
        again, created_again = ensure_events_table(dynamodb, name)
        assert (created, created_again) == (True, False)
        assert again == stream_arn
        assert dynamodb.scan(TableName=name)["Count"] == 1
    finally:
        dynamodb.delete_table(TableName=name)


def test_a_kept_table_that_no_longer_matches_the_template_is_not_reused(dynamodb: Any) -> None:
    name = f"old-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    try:
        with pytest.raises(LocalStackError, match=r"does not match template.yaml.*make dev RESET=1"):
            ensure_events_table(dynamodb, name)
    finally:
        dynamodb.delete_table(TableName=name)
