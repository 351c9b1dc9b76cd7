"""Domain exceptions. The CLI turns each into one line on stderr and an exit code."""

from __future__ import annotations


class SalovaError(Exception):
    """Base class for every error salova reports to a user (never a bug)."""

    exit_code: int = 1


class UsageError(SalovaError):
    """Bad arguments or option values.

    ``problems`` names the option fields at fault, as ``(field, text)`` pairs such as ``("fps", "must be in
    (0, 30], got -1")``: the library speaks in field names, the CLI renders them as its ``--flag`` names.
    """

    exit_code = 2

    def __init__(self, message: str = "", *, problems: list[tuple[str, str]] | None = None):
        self.problems = list(problems or [])
        super().__init__(message or self.describe())

    def describe(self, name=lambda field: field) -> str:
        """The message, each problem's field shown as ``name(field)``."""
        if not self.problems:
            return str(self)
        return "; ".join(f"{name(f)} {text}" for f, text in self.problems)


def option_problem(field: str, text: str) -> UsageError:
    """One bad option value: ``option_problem("top_k", "must be >= 1, got 0")``."""
    return UsageError(problems=[(field, text)])


class CheckpointError(SalovaError):
    """A checkpoint or encoder directory is missing, incomplete or corrupt."""


class VideoOpenError(SalovaError):
    """A file could not be opened or decoded as a video."""


class IndexStoreError(SalovaError):
    """The index is missing, unreadable, read-only, full or otherwise unusable."""


class IndexLockedError(IndexStoreError):
    """Another process is writing to the same index."""


class FingerprintMismatchError(IndexStoreError):
    """The index was built with a different encoder or checkpoint."""


class TrainingDataError(SalovaError):
    """A training data file is missing or unusable as a whole."""


class AnswererError(SalovaError):
    """An answerer (a VLM, a text LM, a chat server) could not load or answer."""


class NonFiniteLogitsError(SalovaError):
    """A model produced NaN or infinite logits (overflow in a low-precision dtype, or broken weights)."""
