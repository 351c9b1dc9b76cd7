"""The scene detector's small frames without converting whole frames to BGR.

``scenedetect detect-adaptive`` decodes every frame, converts all of its pixels from YUV to BGR (OpenCV's
FFmpeg reader, through swscale) and then downscales the BGR image bilinearly to about 256 px wide. The
bilinear downscale reads at most two source rows and two source columns per output pixel; for a 720p video
(factor 5) it reads exactly one, pixel ``(5i + 2, 5j + 2)``. Converting the full frame is about a third of the
CLI's time on 720p H.264, and nearly all of those pixels are never read.

``SparseSource`` decodes with PyAV and converts only the pixels the downscale reads, with the same swscale
conversion:

1. ``SparsePlan`` lists the display-orientation pixels ``cv2.resize(INTER_LINEAR)`` reads (rows and columns
   with a non-zero weight) and where each lies in the coded (unrotated) frame.
2. Per frame, those pixels' Y and their 4:2:0 chroma samples are gathered into a small YUV frame in which each
   pixel fills a 2x2 block over its own chroma sample; swscale's YUV -> BGR conversion of a 4:2:0 frame maps
   every pixel from its own Y and its block's chroma, so converting the small frame gives exactly those
   pixels' BGR values.
3. When the factor is an odd integer the read pixels *are* the small frame. Otherwise they are written into a
   display-size BGR buffer at their places (the other pixels are never read) and ``cv2.resize`` runs on it.

So the small frames are the CLI's to the bit, not an approximation, and the cuts are the same. That rests on
facts checked, not assumed: ``SparsePlan.verify`` compares the sparse result with a full conversion on a
random frame of the video's own size and pixel format when the file opens, and refuses (``auto`` then uses
OpenCV) when they differ; the tests compare every frame against OpenCV's reader on videos of several sizes,
rotations and colour ranges. Only 8-bit 4:2:0 video (``yuv420p``, ``yuvj420p``) takes this path.

Full-resolution RGB is converted only for the 1-FPS frames the encoder samples.
"""

from __future__ import annotations

import av
import cv2
import numpy as np

from salova.errors import VideoOpenError
from salova.video.decode import PyAVSource

# 8-bit 4:2:0 formats whose swscale conversion is per pixel from its own luma and its block's chroma.
SPARSE_FORMATS = ("yuv420p", "yuvj420p")


def _positions(n_src: int, n_dst: int) -> np.ndarray:
    """OpenCV's bilinear source position of each output index: ``(d + 0.5) * n_src / n_dst - 0.5`` [n_dst]."""
    return (np.arange(n_dst, dtype=np.float64) + 0.5) * (n_src / n_dst) - 0.5


def bilinear_taps(n_src: int, n_dst: int) -> np.ndarray:
    """Source indices ``cv2.resize(..., INTER_LINEAR)`` reads along one axis of ``n_src`` -> ``n_dst`` (sorted).

    Per output position: the floor and, unless the position is a whole number (weight 0), the next index, both
    clamped to the image.
    """
    pos = _positions(n_src, n_dst)
    left = np.floor(pos).astype(np.int64)
    taps = [left, left[pos > left] + 1]
    return np.unique(np.clip(np.concatenate(taps), 0, n_src - 1))


class SparsePlan:
    """Which pixels of a ``coded_size`` frame (rotated ``rotate_k`` quarter turns for display) the detector's
    downscale to ``small_size`` reads, and how to gather and convert them.

    ``rows`` [R], ``cols`` [C]: the display rows and columns read. ``direct``: they are exactly the small
    frame's pixels (no interpolation), so no resize is needed.
    """

    def __init__(self, coded_size: tuple[int, int], rotate_k: int, small_size: tuple[int, int], pix_fmt: str):
        if pix_fmt not in SPARSE_FORMATS:
            raise ValueError(f"pixel format {pix_fmt} has no sparse conversion")
        cw, ch = coded_size
        self.coded_size = coded_size
        self.rotate_k = rotate_k % 4
        self.display_size = (ch, cw) if self.rotate_k % 2 else (cw, ch)
        self.small_size = small_size
        self.pix_fmt = pix_fmt
        dw, dh = self.display_size
        sw, sh = small_size
        self.rows, self.cols = bilinear_taps(dh, sh), bilinear_taps(dw, sw)
        # every output position a whole number: each small pixel is one read pixel, unweighted
        self.direct = all(np.array_equal(p, np.floor(p)) for p in (_positions(dh, sh), _positions(dw, sw)))
        # The coded (y, x) of every display pixel read: rotate an index image as the frames are rotated.
        coded = np.rot90(np.arange(ch * cw, dtype=np.int64).reshape(ch, cw), k=self.rotate_k)
        self._coded_y, self._coded_x = np.divmod(coded[np.ix_(self.rows, self.cols)], cw)  # [R, C] each
        self._lines: tuple[int, int, int] | None = None
        self._y_at = self._c_at = None
        r, c = len(self.rows), len(self.cols)
        self._sub = av.VideoFrame(2 * c, 2 * r, pix_fmt)  # each read pixel as a 2x2 block over its chroma sample
        self._sub_planes = [_plane_array(p) for p in self._sub.planes]
        self._buffer = None if self.direct else np.zeros((dh, dw, 3), np.uint8)
        self._scatter = None if self.direct else np.ix_(self.rows, self.cols)

    def _index(self, frame: av.VideoFrame) -> None:
        """Flat offsets of the read pixels in the frame's planes (plane lines may be padded)."""
        lines = tuple(p.line_size for p in frame.planes[:3])
        if lines != self._lines:
            self._lines = lines
            self._y_at = self._coded_y * lines[0] + self._coded_x
            self._c_at = (self._coded_y // 2) * lines[1] + self._coded_x // 2
            if lines[1] != lines[2]:
                raise ValueError("chroma planes with different line sizes")

    def small_bgr(self, frame: av.VideoFrame) -> np.ndarray:
        """The CLI's detector input for ``frame``: [small_h, small_w, 3] uint8 BGR."""
        self._index(frame)
        y, u, v = (np.frombuffer(p, np.uint8) for p in frame.planes[:3])
        sub_y, sub_u, sub_v = self._sub_planes
        luma = y.take(self._y_at)  # [R, C]
        for dy in (0, 1):
            for dx in (0, 1):
                sub_y[dy::2, dx::2] = luma
        sub_u[...] = u.take(self._c_at)
        sub_v[...] = v.take(self._c_at)
        # The frame's colour matrix and range, as OpenCV's reader (and PyAV) convert with them.
        self._sub.colorspace, self._sub.color_range = frame.colorspace, frame.color_range
        read = self._sub.to_ndarray(format="bgr24", threads=1)[::2, ::2]  # [R, C, 3]: the read pixels' BGR
        if self.direct:
            return np.ascontiguousarray(read)
        self._buffer[self._scatter] = read
        return cv2.resize(self._buffer, self.small_size, interpolation=cv2.INTER_LINEAR)

    def full_bgr(self, frame: av.VideoFrame) -> np.ndarray:
        """The whole frame in display orientation, converted as OpenCV's reader converts it: [H, W, 3] BGR."""
        image = frame.to_ndarray(format="bgr24", interpolation="BICUBIC")
        return np.ascontiguousarray(np.rot90(image, k=self.rotate_k)) if self.rotate_k else image

    def verify(self, like: av.VideoFrame, seed: int = 0) -> bool:
        """Whether the sparse path equals full conversion + ``cv2.resize`` here, on a random frame with the size,
        format and colour tags of ``like`` (every pixel and chroma sample noise, so any mix-up shows)."""
        cw, ch = self.coded_size
        rng = np.random.default_rng(seed)
        frame = av.VideoFrame(cw, ch, self.pix_fmt)
        frame.colorspace, frame.color_range = like.colorspace, like.color_range
        for plane in frame.planes:
            arr = np.frombuffer(plane, np.uint8)
            arr[...] = rng.integers(0, 256, arr.shape, dtype=np.uint8)
        expected = cv2.resize(self.full_bgr(frame), self.small_size, interpolation=cv2.INTER_LINEAR)
        return np.array_equal(self.small_bgr(frame), expected)


def _plane_array(plane) -> np.ndarray:
    """A writable [height, width] view of a frame plane's pixels (PyAV planes are writable buffers)."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]


class SparseSource(PyAVSource):
    """PyAV decoding; the detector's frames from ``SparsePlan``, full RGB only for the sampled frames.

    Yields ``(time_s, av.VideoFrame)``. Opening fails (``VideoOpenError``, so ``auto`` moves on to OpenCV) for
    a pixel format other than 8-bit 4:2:0, or when ``SparsePlan.verify`` finds the sparse conversion differs
    from the full one for this file's size, format and colour tags.
    """

    name = "sparse"

    def _read(self) -> tuple[float, av.VideoFrame] | None:
        item = next(self._frames, None)
        if item is None:
            self.stopped_early = self._resync.stopped_early
        return item

    def open(self) -> None:
        super().open()
        frame = self._first[1]
        try:
            self.plan = SparsePlan(self.size, self.rotate_k, _display(self.small_size, self.rotate_k),
                                   frame.format.name)
            ok = self.plan.verify(frame)
        except (ValueError, IndexError, av.FFmpegError) as err:
            self.close()
            raise VideoOpenError(f"{self.path.name}: no sparse conversion ({err})") from err
        if not ok:
            self.close()
            raise VideoOpenError(f"{self.path.name}: sparse conversion differs from the full one here")

    def image_size(self, image: av.VideoFrame) -> tuple[int, int]:
        return image.width, image.height

    def small_bgr(self, image: av.VideoFrame) -> np.ndarray | None:
        """In display orientation (``rotate_k`` does not apply): as the CLI's reader rotates before resizing."""
        if (image.width, image.height) != self.size or image.format.name != self.plan.pix_fmt:
            return None
        return self.plan.small_bgr(image)

    def sample_rgb(self, image: av.VideoFrame) -> np.ndarray:
        rgb = image.to_ndarray(format="rgb24", interpolation="BICUBIC")
        return np.ascontiguousarray(np.rot90(rgb, k=self.rotate_k)) if self.rotate_k else rgb


def _display(size: tuple[int, int], rotate_k: int) -> tuple[int, int]:
    return (size[1], size[0]) if rotate_k % 2 else size
