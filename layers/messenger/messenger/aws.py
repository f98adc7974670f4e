"""boto3 clients with the service's timeouts and retries: one configuration for every AWS call it makes."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5, tcp_keepalive=True
)


def aws_client(service_name: str, *, max_pool_connections: int | None = None) -> Any:
    """A client of `service_name` with CLIENT_CONFIG, sized for `max_pool_connections` threads if given."""
    config = CLIENT_CONFIG
    if max_pool_connections is not None:
        config = config.merge(Config(max_pool_connections=max_pool_connections))
    return boto3.client(service_name, config=config)
