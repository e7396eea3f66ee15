"""The figures the course draws again and again.

Each function draws on a new figure (or on ``ax`` when given) and returns the figure, so that a
notebook cell reads ``helpers.plot.training_curves(history); plt.show()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["use_course_style", "training_curves", "image_grid", "heatmap", "broadcasting"]


def use_course_style() -> None:
    """One look for every figure of the course: readable sizes, light grid, no top/right spines."""
    mpl.rcParams.update({
        "figure.figsize": (6.4, 4.0),
        "figure.dpi": 100,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 12,
        "axes.labelsize": 11,
        "legend.frameon": False,
        "image.cmap": "viridis",
    })


def _numpy(x: object, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as err:  # pragma: no cover - numpy accepts nearly everything
        raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from err


def _axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def training_curves(history: Mapping[str, Sequence[float]], keys: Sequence[str] | None = None,
                    ax: Axes | None = None, title: str = "Training curves",
                    ylabel: str = "loss", logy: bool = False) -> Figure:
    """Plot per-epoch curves from a history such as ``{"train_loss": [...], "val_loss": [...]}``.

    Args:
        history: metric name -> one value per epoch.
        keys: which metrics to draw; by default every key whose name contains "loss".
        ax: draw here instead of on a new figure.
        title, ylabel: labels of the plot.
        logy: logarithmic y axis, for losses spanning decades.
    """
    if not isinstance(history, Mapping) or not history:
        raise ValueError("history must be a non-empty mapping of metric name -> values")
    keys = list(keys) if keys is not None else [k for k in history if "loss" in k]
    if not keys:
        raise ValueError(f"no keys to plot: history has {sorted(history)}; pass keys=[...]")
    missing = [k for k in keys if k not in history]
    if missing:
        raise ValueError(f"keys {missing} are not in history, which has {sorted(history)}")
    fig, ax = _axes(ax)
    for key in keys:
        values = _numpy(history[key], key).astype(float)
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=key)
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    if logy:
        ax.set_yscale("log")
    if len(keys) > 1:
        ax.legend()
    return fig


def image_grid(images: object, titles: Sequence[str] | None = None, ncols: int = 8,
               cmap: str = "gray", title: str | None = None, size: float = 1.4) -> Figure:
    """Show a batch of images in a grid.

    Args:
        images: (N, H, W), (N, 1, H, W), (N, 3, H, W) or (N, H, W, 3), tensor or array.
        titles: one short title per image (for example "pred 3 / true 5").
        ncols: images per row.
        cmap: colour map for single-channel images.
        title: title of the whole figure.
        size: inches per image.
    """
    arr = _numpy(images, "images").astype(float)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (3, 4) or len(arr) == 0:
        raise ValueError(f"images must be a non-empty batch (N, H, W[, C]), got shape {arr.shape}")
    if titles is not None and len(titles) != len(arr):
        raise ValueError(f"titles has {len(titles)} entries for {len(arr)} images")
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    n = len(arr)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(np.clip(arr[i], 0, 1) if arr.ndim == 4 else arr[i], cmap=cmap)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap(field: object, ax: Axes | None = None, title: str = "", xlabel: str = "",
            ylabel: str = "", cbar_label: str = "", cmap: str = "viridis",
            extent: Sequence[float] | None = None, symmetric: bool = False) -> Figure:
    """Draw a 2-D field (a matrix, an image channel, a PDE solution) with a labelled colour bar.

    Args:
        field: a 2-D tensor or array.
        extent: ``(x_min, x_max, y_min, y_max)`` in data units; by default array indices.
        symmetric: centre the colour scale on zero (for signed fields such as errors).
    """
    arr = _numpy(field, "field").astype(float)
    if arr.ndim != 2:
        raise ValueError(f"field must be 2-D, got shape {arr.shape}")
    fig, ax = _axes(ax)
    vmin = vmax = None
    if symmetric:
        vmax = float(np.nanmax(np.abs(arr))) or 1.0
        vmin = -vmax
    origin = "lower" if extent is not None else "upper"
    im = ax.imshow(arr, cmap=cmap, extent=extent, origin=origin, vmin=vmin, vmax=vmax,
                   aspect="auto" if extent is not None else "equal")
    ax.grid(False)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.colorbar(im, ax=ax, label=cbar_label)
    return fig


def _grid_of_numbers(ax: Axes, values: np.ndarray, title: str, ghost: np.ndarray | None = None,
                     vmax: float = 1.0) -> None:
    """Draw a small matrix as coloured boxes with its numbers; ghost cells are pale copies."""
    rows, cols = values.shape
    cmap = plt.get_cmap("Blues")
    for r in range(rows):
        for c in range(cols):
            is_ghost = ghost is not None and ghost[r, c]
            shade = 0.15 + 0.55 * (abs(values[r, c]) / vmax if vmax else 0)
            ax.add_patch(plt.Rectangle((c, rows - 1 - r), 0.94, 0.94, lw=1,
                                       ec="0.6" if is_ghost else "0.2",
                                       ls="--" if is_ghost else "-",
                                       fc=cmap(shade), alpha=0.35 if is_ghost else 1.0))
            text = f"{values[r, c]:g}"
            ax.text(c + 0.47, rows - 1 - r + 0.47, text, ha="center", va="center", fontsize=9,
                    color="0.5" if is_ghost else "black")
    ax.set_xlim(-0.1, max(cols, 1) + 0.1)
    ax.set_ylim(-0.1, max(rows, 1) + 0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)


def broadcasting(a: object, b: object, op: str = "+") -> Figure:
    """Picture broadcasting of two 1-D or 2-D operands: each one stretched, then the result.

    Stretched copies (the ones broadcasting makes without copying memory) are drawn pale and
    dashed. Shapes follow NumPy's rules: align from the right, sizes equal or 1.
    """
    ops = {"+": np.add, "-": np.subtract, "*": np.multiply}
    if op not in ops:
        raise ValueError(f"op must be one of {sorted(ops)}, got {op!r}")
    x, y = _numpy(a, "a").astype(float), _numpy(b, "b").astype(float)
    if x.ndim > 2 or y.ndim > 2:
        raise ValueError(f"a and b must be 1-D or 2-D to be drawn, got {x.shape} and {y.shape}")
    try:
        shape = np.broadcast_shapes(x.shape, y.shape)
    except ValueError as err:
        raise ValueError(f"shapes {x.shape} and {y.shape} do not broadcast: {err}") from err
    shape2 = (1,) * (2 - len(shape)) + tuple(shape)

    def stretch(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v2 = v.reshape((1,) * (2 - v.ndim) + v.shape)
        real = np.zeros(v2.shape, dtype=bool)
        real[...] = True
        full = np.broadcast_to(v2, shape2)
        ghost = np.ones(shape2, dtype=bool)
        ghost[: v2.shape[0], : v2.shape[1]] = ~real
        return full, ghost

    xs, xg = stretch(x)
    ys, yg = stretch(y)
    result = ops[op](xs, ys)
    vmax = float(max(np.abs(xs).max(), np.abs(ys).max(), np.abs(result).max(), 1e-12))
    fig, axes = plt.subplots(1, 3, figsize=(3.2 * 3, 0.9 * shape2[0] + 1.4))
    _grid_of_numbers(axes[0], xs, f"a: {x.shape} stretched to {tuple(shape)}", xg, vmax)
    _grid_of_numbers(axes[1], ys, f"b: {y.shape} stretched to {tuple(shape)}", yg, vmax)
    _grid_of_numbers(axes[2], result, f"a {op} b: {tuple(shape)}", None, vmax)
    fig.suptitle("Broadcasting: pale dashed cells are virtual copies (no memory is copied)",
                 fontsize=11)
    fig.tight_layout()
    return fig
