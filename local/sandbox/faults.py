"""Pending faults: `POST /_sandbox/faults` arms one, the next matching send of that provider takes it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from local.sandbox.common import Log

FAULTS = {"5xx", "429", "613", "timeout", "permanent"}


@dataclass
class Fault:
    provider: str
    fault: str
    code: int | None = None
    count: int = 1
    recipient: str | None = None
    seconds: float = 20.0


class FaultStore:
    """Thread-safe list of armed faults; each is taken `count` times, then forgotten."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, spec: dict[str, Any]) -> Fault:
        provider, kind = spec.get("provider"), str(spec.get("fault", ""))
        if provider not in ("meta", "vonage") or kind not in FAULTS:
            raise ValueError(f"provider must be meta|vonage and fault one of {sorted(FAULTS)}")
        fault = Fault(
            provider,
            kind,
            int(spec["code"]) if spec.get("code") is not None else None,
            max(1, int(spec.get("count", 1))),
            spec.get("recipient"),
            float(spec.get("seconds", 20)),
        )
        with self._lock:
            self._faults.append(fault)
        detail = (f" code {fault.code}" if fault.code else "") + (f" for {fault.recipient}" if fault.recipient else "")
        self.log(f"[sandbox] fault armed: {provider} {kind} x{fault.count}{detail}")
        return fault

    def take(self, provider: str, recipient: str | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.provider == provider and fault.recipient in (None, recipient):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
