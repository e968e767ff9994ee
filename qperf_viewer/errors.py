"""Exception classes with messages a user can act on.

Data-quality problems that do not stop the work travel with results as flags
(plain strings) instead of exceptions; exceptions are for what stops a step.
"""

from __future__ import annotations


class QPerfError(Exception):
    """Base class. ``str(err)`` is a complete sentence for the user: what, where, what to do."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None):
        self.message = message
        self.path = path
        self.hint = hint
        super().__init__(self.user_message())

    def user_message(self) -> str:
        message = self.message.rstrip()
        if message and message[-1] not in ".!?:":
            message += "."  # a sentence, also when a hint follows
        parts = [message]
        if self.path:
            parts.insert(0, f"{self.path}:")
        if self.hint:
            parts.append(self.hint)
        return " ".join(parts)


class InputError(QPerfError):
    """Unusable input (folder, file, series, array); nothing to do but fix the input."""


class NoPerfusionExamError(InputError):
    """A folder holds no stress/rest perfusion series that can be analysed."""


class ModelError(QPerfError):
    """The segmentation model is missing or cannot be run."""


class CancelledError(QPerfError):
    """Long work was cancelled by the user."""
