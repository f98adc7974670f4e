"""The one Logger, Tracer and Metrics of the service (named by POWERTOOLS_SERVICE_NAME)."""

import json
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

# Keys every Powertools line would carry that the function's name already says (its ARN and memory, the
# service) or that the message names (the source line). CloudWatch bills each byte ingested: they were 170
# of a line's 480 bytes (docs/cost.md). The function's name (it tells the lines apart in a query over both
# log groups, or in the local stack's one log), the request ids, cold_start and level stay.
DROPPED_KEYS = frozenset({"location", "service", "function_arn", "function_memory_size"})
_TRACING = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in ("1", "true")


def compact_json(log: dict[str, Any]) -> str:
    """One log line without DROPPED_KEYS (and without the X-Ray trace id when tracing is off: it links nothing)."""
    record = {k: v for k, v in log.items() if k not in DROPPED_KEYS and (_TRACING or k != "xray_trace_id")}
    return json.dumps(record, separators=(",", ":"), default=str, ensure_ascii=False)


logger = Logger(json_serializer=compact_json)
# Only botocore is patched (DynamoDB and Secrets Manager calls become subsegments); provider HTTP calls
# have explicit subsegments. Patching everything X-Ray knows imports requests, sqlite3 and more at every
# cold start for nothing.
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MessengerWebhook"))
