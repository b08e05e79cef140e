"""Probe samples: every visible object of random scenes, with its mask and labels."""

import numpy as np

from vlaworks.sim.probe_data import KINDS, probe_samples


def test_probe_samples_are_labelled_objects_and_deterministic():
    samples = probe_samples(24, seed=3, image_size=48)
    again = probe_samples(24, seed=3, image_size=48)
    assert len(samples) == 24
    for a, b in zip(samples, again, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
        assert (a.kind, a.color) == (b.kind, b.color)
    for s in samples:
        assert s.image.shape == (48, 48, 3) and s.image.dtype == np.uint8
        assert s.mask.shape == (48, 48) and s.mask.sum() > 0
        assert s.kind in KINDS and (s.color == "") == (s.kind in ("bowl", "plate"))
    other = probe_samples(4, seed=4, image_size=48)
    assert not np.array_equal(other[0].image, samples[0].image)
