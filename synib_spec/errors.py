"""The one error a user's spec, knob or dataset can cause: ``field`` names it, ``reason`` says why."""

from __future__ import annotations


class SpecError(ValueError):
    """A value a user gave is not allowed. ``field`` is a dotted path (``config.lr``,
    ``sweep.lambda.values[2]``, ``x_audio``); ``reason`` says why and what is allowed."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def at(self, prefix: str) -> SpecError:
        """The same error with ``prefix.`` in front of its field (an error of the same type)."""
        return type(self)(f"{prefix}.{self.field}" if prefix else self.field, self.reason)

    def all(self) -> list[SpecError]:
        """Every problem this error stands for (itself, or each of ``SpecErrors``)."""
        return [self]


class SpecErrors(SpecError):
    """Several independent problems of one spec: ``errors`` lists each; ``field`` and
    ``reason`` are the first one's, and the message joins them all with ``; ``."""

    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__(errors[0].field, errors[0].reason)
        self.errors = errors
        self.args = ("; ".join(str(e) for e in errors),)

    def all(self) -> list[SpecError]:
        return list(self.errors)
