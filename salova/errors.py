"""Domain exceptions. The CLI turns each into one line on stderr and an exit code."""

from __future__ import annotations


class SalovaError(Exception):
    """Base class for every error salova reports to a user (never a bug)."""

    exit_code: int = 1


class UsageError(SalovaError):
    """Bad arguments or option values."""

    exit_code = 2


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


class NonFiniteLogitsError(SalovaError):
    """A model produced NaN or infinite logits (overflow in a low-precision dtype, or broken weights)."""
