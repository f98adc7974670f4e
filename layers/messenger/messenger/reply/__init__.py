"""The reply side: for each new inbound message, claim -> respond -> check policy -> send -> record.

- `records.py`: a stream record decoded once into a `ReplyRecord` (the inbound message, its conversation);
- `pipeline.py`: `ReplyPipeline`, one record from claim to settled reply;
- `stats.py`: the metrics the workers collect and the main thread emits once;
- `batch.py`: `ConversationOrderedProcessor`, the batch: conversations in parallel, in order within one;
- `wiring.py`: the pipeline built from `Settings`, and the record handler of functions/reply/app.py.
"""
