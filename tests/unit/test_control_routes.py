"""The control APIs' route table (local/control.py): a matched route answers its handler's body, else 404/405."""

from __future__ import annotations

from typing import Any

from local.control import ANY, Answer, Request, Routes
from local.sandbox.server import CONTROL as SANDBOX_CONTROL
from local.stack.control_routes import CONTROL as STACK_CONTROL


def echo(context: list[str], request: Request) -> Answer:
    context.append(request.path)
    return 201, {"got": request.json(), "query": request.query}


ROUTES = Routes[list[str]](
    {
        ("POST", "/_x/echo"): echo,
        ("DELETE", "/_x/echo"): lambda _context, _request: (200, {"cleared": True}),
        (ANY, "/_x/health"): lambda _context, _request: (200, {"ok": True}),
    },
    not_found={"error": "unknown"},
)


def test_a_matched_route_answers_its_handlers_status_and_body() -> None:
    seen: list[str] = []
    status, body = ROUTES.dispatch(seen, Request("POST", "/_x/echo", b'{"a": 1}', {"since": "3"}))
    assert (status, body) == (201, {"got": {"a": 1}, "query": {"since": "3"}})
    assert seen == ["/_x/echo"], "the handler got the context"


def test_an_empty_body_reads_as_an_empty_object() -> None:
    assert ROUTES.dispatch([], Request("POST", "/_x/echo"))[1]["got"] == {}


def test_an_unknown_path_is_404_with_the_tables_body() -> None:
    seen: list[str] = []
    assert ROUTES.dispatch(seen, Request("GET", "/_x/nothing")) == (404, {"error": "unknown"})
    assert seen == []


def test_a_known_path_with_another_method_is_405_naming_the_allowed_ones() -> None:
    seen: list[str] = []
    status, body = ROUTES.dispatch(seen, Request("GET", "/_x/echo"))
    assert status == 405 and body["allow"] == ["DELETE", "POST"]
    assert seen == [], "no handler ran"


def test_any_matches_every_method() -> None:
    for method in ("GET", "POST", "DELETE"):
        assert ROUTES.dispatch([], Request(method, "/_x/health")) == (200, {"ok": True})


def test_the_default_404_body() -> None:
    assert Routes[Any]({}).dispatch(None, Request("GET", "/")) == (404, {"message": "Not Found"})


def test_both_control_apis_are_route_tables() -> None:
    assert ("POST", "/_sandbox/faults") in SANDBOX_CONTROL.table
    assert ("POST", "/_local/poller/restart") in STACK_CONTROL.table
    assert SANDBOX_CONTROL.dispatch(None, Request("GET", "/_sandbox/nope")) == (  # type: ignore[arg-type]
        404,
        {"error": "unknown sandbox control path"},
    )
    assert STACK_CONTROL.dispatch(None, Request("PUT", "/_local/failures"))[0] == 405  # type: ignore[arg-type]
