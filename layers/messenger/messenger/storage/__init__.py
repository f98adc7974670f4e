"""The events table behind a port of domain verbs (docs/design.md, "Keys" and "Access patterns").

- `port.py`: the `Store` Protocol and the records it exchanges;
- `codec.py`: keys and the item codec (boto3's TypeSerializer/TypeDeserializer);
- `dynamodb.py`: `DynamoStore`, the only code that writes a DynamoDB expression.

Its in-memory twin for unit tests and benchmarks, `MemoryStore`, is dev support (devkit/memory_store.py):
it is not deployed.
"""

from messenger.storage.codec import (
    event_item,
    event_key,
    from_item,
    record_conversation,
    stream_keys,
    to_item,
)
from messenger.storage.dynamodb import DynamoStore, dynamodb_client
from messenger.storage.port import CachedProfile, NewClaim, OutboundMessage, ReplyState, Store, Turn, UnreadMessage

__all__ = [
    "CachedProfile",
    "DynamoStore",
    "NewClaim",
    "OutboundMessage",
    "ReplyState",
    "Store",
    "Turn",
    "UnreadMessage",
    "dynamodb_client",
    "event_item",
    "event_key",
    "from_item",
    "record_conversation",
    "stream_keys",
    "to_item",
]
