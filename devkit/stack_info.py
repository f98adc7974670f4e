"""Where a running local stack (`make dev`) records itself: `.local/stack-<PORT>.json` holds its URLs, secret
ids and the processes it started; `make chat` and `make connect LOCAL=1` find the stack through it."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    return Path(os.environ.get("LOCAL_STATE_DIR") or ROOT / ".local")


def stack_info_file(api_port: int) -> Path:
    return state_dir() / f"stack-{api_port}.json"
