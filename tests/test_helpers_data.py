"""Unit tests of helpers.data: real offline data sets and generators."""

import numpy as np
import pytest
import torch

from helpers import data


def test_digits():
    x, y = data.digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0 and set(y.tolist()) == set(range(10))
    flat, _ = data.digits(flat=True)
    assert flat.shape == (1797, 64)


def test_time_series():
    years, counts = data.sunspots()
    assert years[0] == 1700 and len(years) == len(counts) == 309
    time, ppm = data.co2()
    assert len(time) == len(ppm) and np.isnan(ppm).any(), "co2 has gaps to handle"
    assert 1958 < time[0] < 1959 and np.all(np.diff(time) > 0)
    assert 310 < np.nanmin(ppm) < np.nanmax(ppm) < 380
    years, volume = data.nile()
    assert years[0] == 1871 and len(volume) == 100
    for array in (*data.sunspots(), *data.co2(), years, volume):
        assert array.flags.writeable, "torch.from_numpy warns on read-only arrays"


@pytest.mark.parametrize("name", sorted(data.SCIENCE_IMAGES))
def test_science_images(name):
    image = data.science_image(name)
    assert image.dtype == np.float32 and 0.0 <= image.min() and image.max() <= 1.0
    assert image.ndim in (2, 3)
    gray = data.science_image(name, gray=True)
    assert gray.ndim == 2 and gray.dtype == np.float32


def test_science_image_rejects_unknown_names():
    with pytest.raises(ValueError, match="name must be one of"):
        data.science_image("astronaut")


def test_clustered_points():
    x, labels = data.clustered_points(n=30, dim=3, centers=4, seed=2)
    assert x.shape == (30, 3) and labels.shape == (30,) and set(labels.tolist()) == {0, 1, 2, 3}
    again, _ = data.clustered_points(n=30, dim=3, centers=4, seed=2)
    assert torch.equal(x, again), "a seed must give the same points"
    for bad in [dict(n=0), dict(dim=1.5), dict(centers=True), dict(spread=0), dict(seed=-1)]:
        with pytest.raises(ValueError):
            data.clustered_points(**bad)
