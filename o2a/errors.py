"""Domain errors of the order core. Each door maps them to its own terms (the CLI to one line
and an exit status, the HTTP API to a status code), so their messages name no door."""


class InputError(ValueError):
    """Bad input from a user or a file: nothing is started (the CLI exits 2)."""


class MalformedDocument(InputError):
    """The document itself cannot be read as an order: not well-formed, a DTD or entities,
    too big, an unknown encoding, the wrong root. Apart from other bad input so that the
    HTTP door can answer 400 here and 422 for a readable order that is not valid."""


class UnknownOrderError(LookupError):
    """No workflow for that order number (the CLI exits 1)."""


class OrderConflictError(RuntimeError):
    """The request clashes with the order's state, or the order refused it; the message is
    the reason (e.g. a second submit, an operator action its state does not allow)."""


class StaleRevision(OrderConflictError):
    """The order already has this revision or a higher one: the document was sent again, or
    a later revision overtook it. A queue consumer acks it as a duplicate; nothing changes."""


class NoWorkerError(RuntimeError):
    """A running order has to answer (a query or an operator action) and no worker did."""


class MessageRejected(Exception):
    """The message bus can never take this message as it is (e.g. a file name too long for
    the outbox): sending it again would fail the same way, so the send fails for good."""

    def __init__(self, message_id: str, reason: str) -> None:
        super().__init__(f"outbound message {message_id} rejected: {reason}")
        self.message_id = message_id
        self.reason = reason


class MessageBusUnavailable(Exception):
    """The message bus cannot take messages now, for a cause an operator can fix (an outbox
    the worker may not write, a full disk): the send is retried. The message says what to
    fix."""
