"""What the local stack runs with: the names events/env.json uses too (table `messenger-events`, secrets
`local/meta` and `local/vonage`), its ports, its options (`python -m local` reads them from the environment) and
the address every part listens on."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from local.services import LocalStackError

TABLE_NAME = "messenger-events"
SECRET_NAMES = {"meta": "local/meta", "vonage": "local/vonage"}
Log = Callable[[str], None]


def bind_host() -> str:
    """127.0.0.1 unless LOCAL_BIND_HOST says otherwise (0.0.0.0 lets `sam local` containers reach the stack)."""
    return os.environ.get("LOCAL_BIND_HOST") or "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    api: int = 3000
    dynamodb: int = 8000
    moto: int = 5000
    sandbox: int = 3001

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Ports:
        env = dict(os.environ if env is None else env)

        def port(name: str, default: int) -> int:
            raw = env.get(name) or str(default)
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise LocalStackError(f"{name} must be a TCP port number, got {raw!r}")
            return int(raw)

        return cls(port("PORT", 3000), port("DYNAMODB_PORT", 8000), port("MOTO_PORT", 5000), port("SANDBOX_PORT", 3001))

    def named(self) -> dict[str, int]:
        return {"PORT": self.api, "DYNAMODB_PORT": self.dynamodb, "MOTO_PORT": self.moto, "SANDBOX_PORT": self.sandbox}


@dataclass(frozen=True)
class Options:
    """How the stack runs; `python -m local` reads them from the environment (see docs/local-stack.md)."""

    poll_interval_s: float = 0.25
    retry_delay_s: float = 0.5
    callback_delay_s: float = 0.3
    callback_time_scale: float = 60.0  # the sandbox's callback retry schedule runs this many times faster
    concurrency: int = 4  # workers per HTTP function (concurrent requests per function)
    reply_concurrency: int = 0  # workers of the reply function; 0 = one per stream lane
    stream_split: int = 1  # virtual child shards per stream shard (local/poller.py: a shard split)
    stream_order: str = "stream"  # the order the poller hands a read's records to the lanes (local/poller.py)
    reset: bool = False  # delete the kept data first
    dynamodb_url: str = ""  # use this running DynamoDB Local instead of starting one (tests)
    sandbox_url: str = ""  # use this running sandbox instead of starting one (its records outlive the stack)
    in_process: bool = False  # functions in this process, one call at a time (bench.cost instruments them)
