"""Stop everything a harness started, on success, on failure and on Ctrl-C or SIGTERM (`make sam-local`,
`make deploy-local`): callbacks registered on one ExitStack, closed with the signals ignored, so a second
Ctrl-C cannot cut the clean-up short."""

from __future__ import annotations

import contextlib
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def interrupted(signum: int, _frame: object) -> None:
    """SIGTERM is handled like Ctrl-C."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def cleanup_always() -> Iterator[contextlib.ExitStack]:
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored (a `&` job)
    cleanup = contextlib.ExitStack()
    try:
        yield cleanup
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cleanup.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)


def keep_logs_unless_passed(
    work: Path, names: tuple[str, ...], outcome: dict[str, bool], prefix: str, log: Callable[[str], None]
) -> None:
    """Copy the run's logs out of its work directory (removed afterwards) when it did not pass."""
    if outcome["passed"]:
        return
    keep = Path(tempfile.mkdtemp(prefix=prefix))
    for name in names:
        with contextlib.suppress(OSError):
            (keep / Path(name).name).write_bytes((work / name).read_bytes())
    log(f"logs kept in {keep}")
