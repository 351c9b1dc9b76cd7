"""Counting decoder work: how many times each file is opened for decoding, and how many frames are decoded."""

from __future__ import annotations

from collections import Counter

import salova.video.backends  # noqa: F401  (every backend class defined before they are listed)
from salova.video.decode import FrameSource


class DecodeCounter:
    """Wraps every decoding backend's ``_open`` and ``_read`` (sparse, OpenCV, PyAV, decord) through
    ``monkeypatch``: each class's own methods, so an inherited one is counted once."""

    def __init__(self, monkeypatch):
        self.opens: Counter[str] = Counter()
        self.frames: Counter[str] = Counter()
        todo = list(FrameSource.__subclasses__())
        while todo:
            cls = todo.pop()
            todo.extend(cls.__subclasses__())
            self._wrap(monkeypatch, cls)

    def _wrap(self, monkeypatch, cls) -> None:
        if "_open" in vars(cls):
            self._wrap_open(monkeypatch, cls)
        if "_read" in vars(cls):
            self._wrap_read(monkeypatch, cls)

    def _wrap_open(self, monkeypatch, cls) -> None:
        real_open = cls._open

        def _open(source):
            self.opens[str(source.path.resolve())] += 1
            return real_open(source)

        monkeypatch.setattr(cls, "_open", _open)

    def _wrap_read(self, monkeypatch, cls) -> None:
        real_read = cls._read

        def _read(source):
            item = real_read(source)
            if item is not None:
                self.frames[str(source.path.resolve())] += 1
            return item

        monkeypatch.setattr(cls, "_read", _read)

    def reset(self) -> None:
        self.opens.clear()
        self.frames.clear()
