"""Errors the command line turns into one clear line and an exit status."""


class InputError(ValueError):
    """Bad input from a user or a file: exit status 2, nothing started."""


class UnknownOrderError(LookupError):
    """No workflow for that order number: exit status 1."""


class OrderConflictError(RuntimeError):
    """The request clashes with the order's current state (e.g. a second submit): exit 1."""


class NoWorkerError(RuntimeError):
    """A running order whose status needs a worker, and none answered: exit 1."""
