"""Exceptions of the domain package. Each maps to one HTTP status or batch outcome, once."""


class MessengerError(Exception):
    """Base class. `code` is a short, secret-free identifier safe to return to a caller."""

    code = "internal_error"


class ConfigError(MessengerError):
    code = "configuration_error"


class SecretUnavailableError(MessengerError):
    """Secrets Manager could not be read, or the secret has the wrong shape."""

    code = "secret_unavailable"


class SignatureMissingError(MessengerError):
    code = "signature_missing"


class SignatureInvalidError(MessengerError):
    code = "signature_invalid"


class UnsignedCallbackError(MessengerError):
    """A Vonage callback without any Authorization header: answered 5xx so Vonage re-sends it signed."""

    code = "unsigned_callback"


class HandshakeRejectedError(MessengerError):
    code = "verification_failed"


class BadRequestError(MessengerError):
    """A correctly signed body that is not JSON or not a shape we know."""

    code = "bad_request"


class NotFoundError(MessengerError):
    code = "not_found"


class PayloadTooLargeError(MessengerError):
    code = "payload_too_large"


class StorageError(MessengerError):
    """DynamoDB failed (throttled, unavailable): the provider should redeliver."""

    code = "storage_unavailable"


class StorageRejectedError(StorageError):
    """DynamoDB refused the item itself (a ValidationException: too large, key too long, a bad number).

    Permanent: the same write fails again on every redelivery, so the webhook skips (and counts) the event
    instead of answering 5xx. Anywhere else it is a StorageError like any other.
    """

    code = "storage_rejected"


class RetryLaterError(MessengerError):
    """The stream record is reported in batchItemFailures so the event source mapping delivers it again."""

    code = "retry_later"


class NotAttemptedError(RetryLaterError):
    """An earlier record of the same conversation failed (or time ran out): kept for after it."""

    code = "not_attempted"


class TurnLostError(StorageError):
    """Another invocation holds the conversation's reply turn now (ours ran out): stop answering it."""

    code = "turn_lost"
