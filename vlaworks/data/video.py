"""MP4 encoding and decoding of camera streams with PyAV.

LeRobotDataset v3 packs several episodes into one mp4 per camera; an episode is the
time span ``[from_timestamp, to_timestamp)`` of that file. :class:`VideoFileEncoder`
appends episodes to one file (forcing a key frame at every episode start so a reader
can seek straight to it) and :func:`decode_span` reads one span back as ``uint8``
``[T, H, W, 3]`` frames.

Codec presets (size and fidelity on 128x128 frames: ``python -m vlaworks.data.size_report``):

* ``"h264"``: libx264, yuv420p, crf 20, preset ``veryfast``: small files, lossy
  (chroma subsampling plus quantisation), the common choice for training data.
* ``"lossless"``: libx264rgb, rgb24, crf 0: bit-exact RGB frames, several times larger.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType


@dataclass(frozen=True)
class VideoCodec:
    """One encoder configuration: PyAV codec name, pixel format and codec options."""

    codec: str
    pix_fmt: str
    options: dict[str, str]

    @property
    def lossless(self) -> bool:
        return self.options.get("crf") == "0" and self.pix_fmt == "rgb24"


VIDEO_CODECS: dict[str, VideoCodec] = {
    "h264": VideoCodec("libx264", "yuv420p", {"crf": "20", "preset": "veryfast", "g": "30"}),
    "lossless": VideoCodec("libx264rgb", "rgb24", {"crf": "0", "preset": "veryfast", "g": "30"}),
}


def get_codec(name: str) -> VideoCodec:
    """Look up a codec preset by name, naming the valid ones when it is unknown."""
    if name not in VIDEO_CODECS:
        raise ValueError(f"Unknown video codec preset {name!r}; choose one of {sorted(VIDEO_CODECS)}.")
    return VIDEO_CODECS[name]


class VideoFileEncoder:
    """Appends episodes of ``uint8 [H, W, 3]`` frames to one mp4 file.

    Frame ``k`` of the file gets presentation time ``k / fps`` seconds, so an episode
    written starting at frame ``s`` with ``n`` frames spans ``[s/fps, (s+n)/fps)``.
    """

    def __init__(self, path: Path, fps: int, height: int, width: int, codec: str = "h264") -> None:
        self.path = Path(path)
        self.fps = int(fps)
        self.height, self.width = int(height), int(width)
        self.codec = get_codec(codec)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream(self.codec.codec, rate=self.fps)
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = self.codec.pix_fmt
        self._stream.options = dict(self.codec.options)
        self._time_base = Fraction(1, self.fps)
        self.num_frames = 0

    def add_episode(self, frames: np.ndarray) -> tuple[float, float]:
        """Encode ``frames`` (``uint8 [T, H, W, 3]``); returns ``(from_timestamp, to_timestamp)``."""
        if frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3) or frames.dtype != np.uint8:
            raise ValueError(
                f"Video frames for {self.path.name} must be uint8 [T, {self.height}, {self.width}, 3]; "
                f"got {frames.dtype} {tuple(frames.shape)}."
            )
        start = self.num_frames
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = start + i
            frame.time_base = self._time_base
            if i == 0:
                frame.pict_type = PictureType.I
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        self.num_frames += len(frames)
        return start / self.fps, self.num_frames / self.fps

    def size_bytes(self) -> int:
        """Bytes written to disk so far (the encoder may still buffer a few frames)."""
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self) -> None:
        """Flush the encoder and finish the mp4 (writes the index the reader needs)."""
        if self._container is None:
            return
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None


def packet_times(path: Path) -> np.ndarray:
    """Presentation times (seconds, ascending) of every video packet in ``path``, read without
    decoding: one packet per frame, so this counts the frames a file really holds, fast.
    Raises ``ValueError`` when the file cannot be demuxed (e.g. truncated)."""
    times: list[float] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    times.append(float(packet.pts * packet.time_base))
    except (av.error.FFmpegError, IndexError) as err:
        raise ValueError(f"Could not read video file {path}: {err}") from err
    return np.sort(np.asarray(times, dtype=np.float64))


def decode_span(path: Path, from_timestamp: float, num_frames: int, fps: float) -> np.ndarray:
    """Decode ``num_frames`` frames starting at ``from_timestamp`` seconds of ``path``.

    For each expected time ``from_timestamp + k / fps`` the decoded frame closest in
    time is taken; a gap larger than half a frame period means the file does not hold
    the span the metadata claims and raises ``ValueError``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Video file {path} is missing; the dataset is incomplete.")
    half = 0.5 / fps
    end = from_timestamp + num_frames / fps
    times: list[float] = []
    images: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if from_timestamp > half and stream.time_base is not None:
                container.seek(int(from_timestamp / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else len(times) / fps
                if t < from_timestamp - half:
                    continue
                if t >= end - half:
                    break
                times.append(t)
                images.append(frame.to_ndarray(format="rgb24"))
    except av.error.FFmpegError as err:
        raise ValueError(f"Could not decode video file {path}: {err}") from err
    expected = from_timestamp + np.arange(num_frames) / fps
    if not times:
        raise ValueError(
            f"Video file {path} has no frames in [{from_timestamp:.3f}, {end:.3f}) s; "
            "the episode metadata and the video do not match."
        )
    got = np.asarray(times)
    nearest = np.abs(got[None, :] - expected[:, None]).argmin(axis=1)
    gap = np.abs(got[nearest] - expected).max()
    if gap > half:
        raise ValueError(
            f"Video file {path} holds {len(times)} frames in [{from_timestamp:.3f}, {end:.3f}) s but the "
            f"metadata expects {num_frames} at {fps} fps (largest timing gap {gap:.3f} s)."
        )
    return np.stack([images[i] for i in nearest])
