"""The webhook's one table of POST routes: the template's POST routes, each served through it. No I/O."""

from __future__ import annotations

import json

import pytest

from local.template import http_routes
from messenger.inbound import routes
from tests.helpers import http_event, load_handler


def test_the_post_table_holds_exactly_the_templates_post_routes_of_the_webhook():
    # Given the POST routes template.yaml gives the webhook function
    template = {r.path for r in http_routes() if r.function_id == "WebhookFunction" and r.method == "POST"}
    # Then the table names each once, and no other
    assert set(routes.POST_ROUTES) == template


@pytest.mark.parametrize("path", sorted(routes.POST_ROUTES))
def test_the_handler_dispatches_each_post_route_through_the_table(monkeypatch, lambda_context, path):
    # Given a configuration without the provider secrets (so an action fails before any I/O)
    monkeypatch.setenv("EVENTS_TABLE", "events")
    monkeypatch.delenv("META_SECRET_ID", raising=False)
    monkeypatch.delenv("VONAGE_SECRET_ID", raising=False)
    handler = load_handler("webhook").lambda_handler
    # When the route is called
    response = handler(http_event("POST", path, b"{}", {"content-type": "application/json"}), lambda_context)
    # Then its action ran: it asked for its provider's secret
    assert (response["statusCode"], json.loads(response["body"])) == (500, {"error": "configuration_error"})
    # And a path outside the table runs no action: 404
    unknown = handler(http_event("POST", path + "-not", b"{}", {}), lambda_context)
    assert (unknown["statusCode"], json.loads(unknown["body"])) == (404, {"error": "not_found"})
