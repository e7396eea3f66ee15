"""Offline data: real data sets that ship inside installed packages, and small generators.

Nothing here downloads. Real data:

- :func:`digits` -- 1,797 handwritten digits, 8x8 grey levels (scikit-learn);
- :func:`sunspots`, :func:`co2`, :func:`nile` -- classic time series (statsmodels);
- :func:`science_image` -- microscopy, astronomy and test images (scikit-image).

Generators: :func:`clustered_points`.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "digits",
    "sunspots",
    "co2",
    "nile",
    "science_image",
    "SCIENCE_IMAGES",
    "clustered_points",
]

#: scikit-image images that ship inside the package (no download), with what they show.
SCIENCE_IMAGES: dict[str, str] = {
    "cell": "a cell imaged by phase-contrast microscopy (grey, 660x550)",
    "hubble_deep_field": "the Hubble eXtreme Deep Field, galaxies (colour, 872x1000)",
    "immunohistochemistry": "stained human colon tissue (colour, 512x512)",
    "retina": "a human retina, fundus photograph (colour, 1411x1411)",
    "camera": "the cameraman test image (grey, 512x512)",
    "coins": "Greek coins on a dark background (grey, 303x384)",
    "moon": "the surface of the moon (grey, 512x512)",
}


def _check_int(value: object, name: str, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _column(frame, name: str) -> np.ndarray:
    """A writable float64 copy of a column (pandas may hand out read-only arrays, which
    ``torch.from_numpy`` warns about -- and a warning in a test cell scores 0)."""
    return np.array(frame[name], dtype=np.float64)


def digits(flat: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The scikit-learn handwritten digits: 1,797 images of 8x8 pixels, labels 0-9.

    Args:
        flat: return images as (N, 64) rows instead of (N, 1, 8, 8).

    Returns:
        ``(X, y)``: ``X`` float32 in [0, 1], shape (N, 1, 8, 8) or (N, 64); ``y`` int64 (N,).
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0  # grey levels are 0..16
    y = torch.tensor(bunch.target, dtype=torch.int64)
    return (x, y) if flat else (x.reshape(-1, 1, 8, 8), y)


def sunspots() -> tuple[np.ndarray, np.ndarray]:
    """Yearly mean sunspot numbers, 1700-2008 (statsmodels).

    Returns:
        ``(years, counts)``, two float64 arrays of shape (309,).
    """
    from statsmodels.datasets import sunspots as source

    frame = source.load_pandas().data
    return _column(frame, "YEAR"), _column(frame, "SUNACTIVITY")


def co2() -> tuple[np.ndarray, np.ndarray]:
    """Weekly atmospheric CO2 at Mauna Loa in ppm, March 1958 - December 2001 (statsmodels).

    The series has gaps: missing weeks are NaN in ``ppm``. Handling them is part of the work.

    Returns:
        ``(time, ppm)``: time in decimal years and CO2 in ppm, float64 arrays of shape (2284,).
    """
    from statsmodels.datasets import co2 as source

    frame = source.load_pandas().data
    index = frame.index
    year_start = np.array([np.datetime64(f"{y}-01-01") for y in index.year])
    days = (index.values.astype("datetime64[D]") - year_start.astype("datetime64[D]")).astype(float)
    time = index.year.to_numpy(np.float64) + days / 365.25
    return time, _column(frame, "co2")


def nile() -> tuple[np.ndarray, np.ndarray]:
    """Yearly flow of the Nile at Aswan, 1871-1970, in 10^8 m^3 (statsmodels).

    Returns:
        ``(years, volume)``, two float64 arrays of shape (100,).
    """
    from statsmodels.datasets import nile as source

    frame = source.load_pandas().data
    return _column(frame, "year"), _column(frame, "volume")


def science_image(name: str, gray: bool = False) -> np.ndarray:
    """A real image that ships with scikit-image, as float32 in [0, 1].

    Args:
        name: one of :data:`SCIENCE_IMAGES` ("cell", "hubble_deep_field", ...).
        gray: convert colour images to one grey channel.

    Returns:
        An array of shape (H, W) for grey images or (H, W, 3) for colour ones.
    """
    if name not in SCIENCE_IMAGES:
        raise ValueError(f"name must be one of {sorted(SCIENCE_IMAGES)}, got {name!r}")
    from skimage import color, data, util

    image = getattr(data, name)()
    if image.ndim == 3 and image.shape[-1] == 4:  # drop an alpha channel
        image = image[..., :3]
    image = util.img_as_float32(image)
    if gray and image.ndim == 3:
        image = color.rgb2gray(image).astype(np.float32)
    return image


def clustered_points(n: int = 100, dim: int = 2, centers: int = 3, spread: float = 0.6,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points drawn around random cluster centres: a small cloud for geometry exercises.

    Args:
        n: number of points.
        dim: dimension of each point.
        centers: number of clusters; centres are drawn uniformly in [-5, 5]^dim.
        spread: standard deviation of the points around their centre.
        seed: seed of a private generator (the global random state is left alone).

    Returns:
        ``(X, labels)``: ``X`` float32 of shape (n, dim), ``labels`` int64 of shape (n,).
    """
    n = _check_int(n, "n", 1)
    dim = _check_int(dim, "dim", 1)
    centers = _check_int(centers, "centers", 1)
    if not spread > 0:
        raise ValueError(f"spread must be > 0, got {spread!r}")
    gen = torch.Generator().manual_seed(_check_int(seed, "seed", 0))
    middles = torch.rand(centers, dim, generator=gen) * 10 - 5
    labels = torch.arange(n) % centers
    points = middles[labels] + spread * torch.randn(n, dim, generator=gen)
    return points, labels
