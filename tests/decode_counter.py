"""Counting decoder work: how many times each file is opened for decoding, and how many frames are decoded."""

from __future__ import annotations

from collections import Counter

from salova.video.decode import FrameSource


class DecodeCounter:
    """Wraps every decoding backend's ``_open`` and ``_read`` (OpenCV, PyAV, decord) through ``monkeypatch``."""

    def __init__(self, monkeypatch):
        self.opens: Counter[str] = Counter()
        self.frames: Counter[str] = Counter()
        for cls in FrameSource.__subclasses__():
            self._wrap(monkeypatch, cls)

    def _wrap(self, monkeypatch, cls) -> None:
        real_open, real_read = cls._open, cls._read

        def _open(source):
            self.opens[str(source.path.resolve())] += 1
            return real_open(source)

        def _read(source):
            item = real_read(source)
            if item is not None:
                self.frames[str(source.path.resolve())] += 1
            return item

        monkeypatch.setattr(cls, "_open", _open)
        monkeypatch.setattr(cls, "_read", _read)

    def reset(self) -> None:
        self.opens.clear()
        self.frames.clear()
