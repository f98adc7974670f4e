"""Reply Lambda: stream batch processing only. Claiming, responding and sending live in the messenger layer."""

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from messenger.observability import logger, metrics, tracer
from messenger.reply.batch import ConversationOrderedProcessor
from messenger.reply.wiring import conversation_handler, current_pipeline

processor = ConversationOrderedProcessor(prepare=current_pipeline)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics  # no ColdStart metric: each log line's cold_start says it, for free
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=conversation_handler, processor=processor, context=context
    )
