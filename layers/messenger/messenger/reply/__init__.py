"""The reply side: a stream record is a doorbell; the conversation's turn answers its pending messages in order.

- `records.py`: a stream record decoded once into a `ReplyRecord` (the inbound message, its conversation);
- `turn.py`: `TurnKeeper`, the conversation's reply turn (one invocation at a time answers a conversation);
- `pipeline.py`: `ReplyPipeline`, a turn: each pending message from claim to settled reply, in key order;
- `stats.py`: the metrics the workers collect and the main thread emits once;
- `batch.py`: `ConversationOrderedProcessor`, the batch: one call per conversation, conversations in parallel;
- `wiring.py`: the pipeline built from `Settings`, and the conversation handler of functions/reply/app.py.
"""
