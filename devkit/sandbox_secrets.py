"""The committed sandbox secrets (events/sandbox-secrets.json): seeded by `make dev`, signing the samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SANDBOX_SECRETS = Path(__file__).resolve().parent.parent / "events" / "sandbox-secrets.json"


def sandbox_secrets() -> dict[str, dict[str, Any]]:
    data = json.loads(SANDBOX_SECRETS.read_text(encoding="utf-8"))
    return {"meta": data["meta"], "vonage": data["vonage"]}


# The sandbox's own identities beside the secrets: the Meta app id its Graph API answers to, and the Vonage API
# secret of its Application API (the fixed secret shape holds neither).
SANDBOX_APP_ID = 1517776481860111
SANDBOX_API_SECRET = "sandbox-api-secret-NOT-FOR-PRODUCTION"  # noqa: S105 - the local sandbox's own value
