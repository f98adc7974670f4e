"""The one Logger, Tracer and Metrics of the service (named by POWERTOOLS_SERVICE_NAME)."""

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
# Only botocore is patched (DynamoDB and Secrets Manager calls become subsegments); provider HTTP calls
# have explicit subsegments. Patching everything X-Ray knows imports requests, sqlite3 and more at every
# cold start for nothing.
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MessengerWebhook"))
