"""boto3 clients for the local services (DynamoDB Local, moto server): fixed credentials and region, so a client
never reads the machine's AWS configuration and never reaches AWS."""

from __future__ import annotations

from typing import Any

import boto3

REGION = "us-east-1"
# DynamoDB Local and moto accept any credentials; these fixed values keep boto3 off real AWS config.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION}


def client(service_name: str, endpoint: str) -> Any:
    return boto3.client(
        service_name,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
