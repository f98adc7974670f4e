"""Meta's data-deletion callback through the webhook handler, on DynamoDB Local."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from devkit.apigw_events import http_event
from messenger.providers.meta.signed_request import make_signed_request
from tests.helpers import META, dumps, load_handler, meta_body, meta_message, meta_post

pytestmark = pytest.mark.integration
USER = "3998527223577371"
OTHER = "5550001112223334"


@pytest.fixture
def handler(stack_env):
    return load_handler("webhook").lambda_handler


def deletion_request(signed_request: str) -> dict:
    body = urlencode({"signed_request": signed_request}).encode()
    headers = {"content-type": "application/x-www-form-urlencoded", "host": "hooks.example.com"}
    return http_event("POST", "/meta/data-deletion", body, headers)


def test_deletion_removes_the_users_items_and_reports_status(handler, lambda_context, stack_env):
    # Given two users' messages in the table
    body = meta_body(
        meta_message("m_u1", sender=USER), meta_message("m_u2", sender=USER), meta_message("m_o1", sender=OTHER)
    )
    assert handler(meta_post(dumps(body)), lambda_context)["statusCode"] == 200
    # When Meta asks to delete the first user's data
    signed = make_signed_request(
        META["app_secret"], {"algorithm": "HMAC-SHA256", "user_id": USER, "issued_at": 1_700_000_000}
    )
    response = handler(deletion_request(signed), lambda_context)
    # Then only the other user's item is left, and the status URL reports completion
    assert response["statusCode"] == 200
    answer = json.loads(response["body"])
    code = answer["confirmation_code"]
    assert code.isalnum()
    assert answer["url"] == f"https://hooks.example.com/meta/data-deletion/{code}"
    remaining = [i for i in stack_env.items() if i.get("record_type") != "deletion"]
    assert [i["user_id"] for i in remaining] == [OTHER]
    status = handler(
        http_event(
            "GET",
            f"/meta/data-deletion/{code}",
            route_key="GET /meta/data-deletion/{code}",
            path_parameters={"code": code},
        ),
        lambda_context,
    )
    assert status["statusCode"] == 200
    assert json.loads(status["body"])["status"] == "completed"
    assert json.loads(status["body"])["deleted_items"] == 2
    assert USER not in json.dumps(stack_env.items())


@pytest.mark.parametrize(
    "signed",
    [
        "",
        "abc",
        "a.b",
        make_signed_request("wrong-secret", {"algorithm": "HMAC-SHA256", "user_id": USER}),
    ],
)
def test_bad_signed_request_rejected_and_nothing_deleted(handler, lambda_context, stack_env, signed):
    handler(meta_post(dumps(meta_body(meta_message("m_keep", sender=USER)))), lambda_context)
    response = handler(deletion_request(signed), lambda_context)
    assert response["statusCode"] == 401
    assert [i["event_id"] for i in stack_env.items()] == ["m_keep"]


def test_unknown_confirmation_code_is_404(handler, lambda_context, stack_env):
    response = handler(http_event("GET", "/meta/data-deletion/nope", path_parameters={"code": "nope"}), lambda_context)
    assert response["statusCode"] == 404
