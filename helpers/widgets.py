"""Interactive teaching widgets: move a slider, watch a tensor and its picture change.

Each widget is an ipywidgets container; make it the last line of a cell to show it::

    from helpers.widgets import brightness_contrast
    brightness_contrast(image)  # image: (H, W, 3) or (H, W) floats in [0, 1]

The arithmetic behind a widget is a plain function (:func:`adjust`), so that a notebook can
show the formula and tests can check it without a browser. Figures are drawn off-screen and
sent to the browser as PNG images, so the widgets work with any matplotlib backend.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["adjust", "clipped_fraction", "adjustment_figure", "BrightnessContrast",
           "brightness_contrast"]

BRIGHTNESS_RANGE = (-0.5, 0.5)
CONTRAST_RANGE = (0.0, 3.0)
_CHANNEL_COLOURS = ("tab:red", "tab:green", "tab:blue")


def _as_image(image: object) -> torch.Tensor:
    """``image`` as a float tensor of shape (H, W) or (H, W, 3) with values in [0, 1]."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor or numpy array, got {type(image).__name__}")
    if not image.is_floating_point():
        raise TypeError(f"image must hold floats in [0, 1], got dtype {image.dtype}; "
                        "convert with image.float() / 255")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)) or image.numel() == 0:
        raise ValueError(f"image must have shape (H, W) or (H, W, 3), got {tuple(image.shape)}")
    lo, hi = image.min().item(), image.max().item()
    if lo < 0 or hi > 1:
        raise ValueError(f"image values must lie in [0, 1], got min {lo:.3g} and max {hi:.3g}")
    return image.detach().cpu()


def _in_range(value: float, name: str, bounds: tuple[float, float]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name} must lie in [{bounds[0]}, {bounds[1]}], got {value}")
    return float(value)


def _unclamped(image: torch.Tensor, brightness: float, contrast: float) -> torch.Tensor:
    return contrast * (image - 0.5) + 0.5 + brightness  # scalars broadcast to every pixel


def adjust(image: object, brightness: float = 0.0, contrast: float = 1.0) -> torch.Tensor:
    """Brightness and contrast as elementwise arithmetic: ``clamp(c (x - 0.5) + 0.5 + b, 0, 1)``.

    Args:
        image: floats in [0, 1], shape (H, W) or (H, W, 3) (tensor or numpy array).
        brightness: ``b``, added to every value, in [-0.5, 0.5]; 0 changes nothing.
        contrast: ``c``, the stretch around mid-grey 0.5, in [0, 3]; 1 changes nothing,
            0 gives a flat grey image.

    Returns:
        A new float tensor of the same shape, clamped to [0, 1].
    """
    x = _as_image(image)
    b = _in_range(brightness, "brightness", BRIGHTNESS_RANGE)
    c = _in_range(contrast, "contrast", CONTRAST_RANGE)
    return _unclamped(x, b, c).clamp(0.0, 1.0)


def clipped_fraction(image: object, brightness: float = 0.0, contrast: float = 1.0) -> float:
    """Fraction of the values that :func:`adjust` pushes outside [0, 1] and clamps (lost detail)."""
    x = _as_image(image)
    b = _in_range(brightness, "brightness", BRIGHTNESS_RANGE)
    c = _in_range(contrast, "contrast", CONTRAST_RANGE)
    raw = _unclamped(x, b, c)
    return ((raw < 0) | (raw > 1)).float().mean().item()


def adjustment_figure(image: object, brightness: float = 0.0, contrast: float = 1.0,
                      dpi: int = 72) -> Figure:
    """The adjusted image next to the histogram of its values (one line per channel).

    Drawn without pyplot (no global state, nothing shown by the notebook backend).
    """
    adjusted = adjust(image, brightness, contrast).numpy()
    lost = clipped_fraction(image, brightness, contrast)
    fig = Figure(figsize=(10, 3.6), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax_img, ax_hist = fig.subplots(1, 2, width_ratios=(1, 1.4))
    ax_img.imshow(adjusted, cmap="gray", vmin=0.0, vmax=1.0)
    ax_img.set_title(f"brightness {brightness:+.2f}, contrast ×{contrast:.2f}")
    ax_img.axis("off")
    channels = [adjusted] if adjusted.ndim == 2 else [adjusted[..., k] for k in range(3)]
    colours = ("black",) if adjusted.ndim == 2 else _CHANNEL_COLOURS
    names = ("grey",) if adjusted.ndim == 2 else ("red", "green", "blue")
    bins = np.linspace(0.0, 1.0, 65)
    for values, colour, name in zip(channels, colours, names, strict=True):
        counts, _ = np.histogram(values, bins=bins)
        ax_hist.stairs(counts, bins, color=colour, label=name)
    ax_hist.set_xlim(0.0, 1.0)
    ax_hist.set_yscale("log")
    ax_hist.set_xlabel("pixel value (0 = black, 1 = full intensity)")
    ax_hist.set_ylabel("number of pixels (log scale)")
    ax_hist.set_title(f"values clamped to 0 or 1: {100 * lost:.1f} %")
    ax_hist.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: curves move
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


class BrightnessContrast(widgets.VBox):
    """Two sliders (brightness, contrast) above a live picture of :func:`adjust` and a histogram.

    Attributes:
        brightness, contrast: the ``FloatSlider`` widgets.
        picture: the ``Image`` widget holding the current PNG.
        adjusted: the current adjusted tensor, same shape as the image.
    """

    def __init__(self, image: object, brightness: float = 0.0, contrast: float = 1.0,
                 dpi: int = 72) -> None:
        self.image = _as_image(image)
        self.dpi = dpi
        style = {"description_width": "80px"}
        layout = widgets.Layout(width="420px")
        self.brightness = widgets.FloatSlider(
            value=_in_range(brightness, "brightness", BRIGHTNESS_RANGE),
            min=BRIGHTNESS_RANGE[0], max=BRIGHTNESS_RANGE[1], step=0.05,
            description="brightness", continuous_update=False, style=style, layout=layout)
        self.contrast = widgets.FloatSlider(
            value=_in_range(contrast, "contrast", CONTRAST_RANGE),
            min=CONTRAST_RANGE[0], max=CONTRAST_RANGE[1], step=0.1,
            description="contrast", continuous_update=False, style=style, layout=layout)
        self.picture = widgets.Image(format="png")
        super().__init__([widgets.HBox([self.brightness, self.contrast]), self.picture])
        self.add_class("course-brightness-contrast")
        for slider in (self.brightness, self.contrast):
            slider.observe(self._update, names="value")
        self._update()

    @property
    def adjusted(self) -> torch.Tensor:
        return adjust(self.image, self.brightness.value, self.contrast.value)

    def _update(self, change: object = None) -> None:
        self.picture.value = _png(adjustment_figure(self.image, self.brightness.value,
                                                    self.contrast.value, self.dpi))


def brightness_contrast(image: object, brightness: float = 0.0,
                        contrast: float = 1.0) -> BrightnessContrast:
    """The :class:`BrightnessContrast` widget for ``image`` ((H, W) or (H, W, 3), in [0, 1])."""
    return BrightnessContrast(image, brightness, contrast)
