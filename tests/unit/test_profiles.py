"""First-name cache on the in-memory store: one look-up per cache period, failures never block a reply."""

from __future__ import annotations

from devkit.memory_store import MemoryStore
from messenger.messages import InboundMessage
from messenger.reply.profiles import ProfileCache

INBOUND = InboundMessage("meta", "m1", "message", "page", "user", "meta#page#user", 0, text="hi")


class Lookup:
    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, inbound: InboundMessage) -> str | None:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]


def test_a_name_is_fetched_once_per_cache_period():
    now = [1_000.0]
    cache = ProfileCache(MemoryStore(), ttl_s=100, clock=lambda: now[0])
    lookup = Lookup("Ada", "Grace")
    assert cache.first_name(INBOUND, lookup) == "Ada"
    assert cache.first_name(INBOUND, lookup) == "Ada" and lookup.calls == 1
    now[0] += 101
    assert cache.first_name(INBOUND, lookup) == "Grace" and lookup.calls == 2


def test_a_miss_is_cached_too_and_a_failure_is_only_no_name():
    store = MemoryStore()
    cache = ProfileCache(store, clock=lambda: 1_000.0)
    lookup = Lookup(None)
    assert cache.first_name(INBOUND, lookup) is None and cache.first_name(INBOUND, lookup) is None
    assert lookup.calls == 1 and "first_name" not in store.get(("meta#page#user", "PROFILE"))
    failing = ProfileCache(MemoryStore(), clock=lambda: 1_000.0)
    assert failing.first_name(INBOUND, Lookup(TimeoutError("slow"))) is None
