"""mp4 encoding of several episodes per file and decoding of one episode's span."""

from __future__ import annotations

import numpy as np
import pytest
from data_fakes import smooth_image

from vlaworks.data.video import VideoFileEncoder, decode_span, get_codec


def _episode(n: int, seed: int) -> np.ndarray:
    return np.stack([smooth_image(t, seed) for t in range(n)])


def test_lossless_spans_decode_exactly(tmp_path):
    path = tmp_path / "cam.mp4"
    episodes = [_episode(5, 0), _episode(3, 1), _episode(7, 2)]
    encoder = VideoFileEncoder(path, fps=15, height=32, width=32, codec="lossless")
    spans = [encoder.add_episode(e) for e in episodes]
    encoder.close()
    assert spans == [(0.0, 5 / 15), (5 / 15, 8 / 15), (8 / 15, 1.0)]
    for (start, _), frames in zip(spans, episodes, strict=True):
        np.testing.assert_array_equal(decode_span(path, start, len(frames), 15), frames)


def test_span_beyond_file_and_bad_input_raise(tmp_path):
    path = tmp_path / "cam.mp4"
    encoder = VideoFileEncoder(path, fps=10, height=32, width=32)
    encoder.add_episode(_episode(4, 0))
    with pytest.raises(ValueError, match=r"uint8 \[T, 32, 32, 3\]"):
        encoder.add_episode(np.zeros((2, 16, 16, 3), np.uint8))
    encoder.close()
    with pytest.raises(ValueError, match="metadata expects 6"):
        decode_span(path, 0.0, 6, 10)
    with pytest.raises(ValueError, match="no frames"):
        decode_span(path, 2.0, 3, 10)
    with pytest.raises(FileNotFoundError, match="missing"):
        decode_span(tmp_path / "nope.mp4", 0.0, 1, 10)
    with pytest.raises(ValueError, match="choose one of"):
        get_codec("mjpeg")
