"""The reply side: a stream record is a doorbell; the conversation's turn answers its pending messages in order.

- `records.py`: the one decode path from a stream record (or a stored item) to an `InboundMessage`;
- `turn.py`: `TurnKeeper`, the conversation's reply turn (one invocation at a time answers a conversation);
- `pipeline.py`: `ReplyPipeline`, a turn: each pending message from claim to settled reply, in key order;
- `ledger.py`: `ReplyLedger`, the `REPLY#` claim that makes sending idempotent and the `MSG#` outbound items;
- `responder.py`: what to answer (`Responder`, the rule responder and its `rules/`);
- `profiles.py`: the optional first-name look-up, cached in the table;
- `stats.py`: the metrics the workers collect and the main thread emits once;
- `batch.py`: `ConversationOrderedProcessor`, the batch: one call per conversation, conversations in parallel;
- `wiring.py`: the pipeline built from `Settings`, and the conversation handler of functions/reply/app.py.
"""
