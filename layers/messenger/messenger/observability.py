"""The one Logger, Tracer and Metrics of the service (named by POWERTOOLS_SERVICE_NAME)."""

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MessengerWebhook"))
