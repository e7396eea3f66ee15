"""Unit tests of helpers.widgets: the arithmetic, the figure, and the live widget (no browser)."""

import numpy as np
import pytest
import torch

from helpers import widgets

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def rgb():
    return torch.rand(12, 10, 3, generator=torch.Generator().manual_seed(0))


def test_adjust_is_the_elementwise_formula(rgb):
    got = widgets.adjust(rgb, brightness=0.1, contrast=1.5)
    expected = torch.tensor([[[min(1.0, max(0.0, 1.5 * (v - 0.5) + 0.5 + 0.1)) for v in px]
                              for px in row] for row in rgb.tolist()])
    torch.testing.assert_close(got, expected)
    assert got.shape == rgb.shape and got.dtype == rgb.dtype
    torch.testing.assert_close(widgets.adjust(rgb), rgb)  # the defaults change nothing
    flat = widgets.adjust(rgb, contrast=0.0)
    torch.testing.assert_close(flat, torch.full_like(rgb, 0.5))
    assert widgets.adjust(rgb, brightness=0.5, contrast=3.0).min() >= 0.0
    grey = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    assert widgets.adjust(grey, brightness=-0.5).max().item() == pytest.approx(0.5)


def test_clipped_fraction_counts_values_pushed_out_of_range():
    image = torch.tensor([[0.0, 0.25, 0.5, 0.75, 1.0]])
    assert widgets.clipped_fraction(image) == 0.0  # values at 0 and 1 are not lost
    # contrast 3: 3 (x - 0.5) + 0.5 leaves [0, 1] for x < 1/3 and x > 2/3
    assert widgets.clipped_fraction(image, contrast=3.0) == pytest.approx(4 / 5)
    assert widgets.clipped_fraction(image, brightness=0.3) == pytest.approx(2 / 5)


@pytest.mark.parametrize(("image", "error", "match"), [
    ([[0.5]], TypeError, "torch.Tensor or numpy array"),
    (torch.zeros(4, 4, dtype=torch.uint8), TypeError, "floats in"),
    (torch.zeros(2, 4, 4), ValueError, r"\(H, W\) or \(H, W, 3\)"),
    (torch.zeros(0, 3), ValueError, r"\(H, W\) or \(H, W, 3\)"),
    (torch.full((4, 4), 255.0), ValueError, "values must lie in"),
])
def test_bad_images_are_named(image, error, match):
    with pytest.raises(error, match=match):
        widgets.adjust(image)


def test_bad_settings_are_named(rgb):
    with pytest.raises(ValueError, match=r"brightness must lie in \[-0.5, 0.5\]"):
        widgets.adjust(rgb, brightness=2.0)
    with pytest.raises(ValueError, match="contrast must lie in"):
        widgets.clipped_fraction(rgb, contrast=-1.0)
    with pytest.raises(TypeError, match="contrast must be a number"):
        widgets.adjust(rgb, contrast=True)
    with pytest.raises(ValueError, match="brightness must lie in"):
        widgets.brightness_contrast(rgb, brightness=1.0)


def test_figure_shows_the_image_and_a_labelled_histogram(rgb):
    fig = widgets.adjustment_figure(rgb, brightness=0.2, contrast=2.0)
    ax_img, ax_hist = fig.axes
    assert ax_img.get_title() == "brightness +0.20, contrast ×2.00"
    lost = widgets.clipped_fraction(rgb, 0.2, 2.0)
    assert ax_hist.get_title() == f"values clamped to 0 or 1: {100 * lost:.1f} %"
    assert "pixel value" in ax_hist.get_xlabel() and "pixels" in ax_hist.get_ylabel()
    assert [t.get_text() for t in ax_hist.get_legend().get_texts()] == ["red", "green", "blue"]
    np.testing.assert_allclose(ax_img.get_images()[0].get_array(), widgets.adjust(rgb, 0.2, 2.0))
    grey = widgets.adjustment_figure(rgb.mean(dim=-1))
    assert [t.get_text() for t in grey.axes[1].get_legend().get_texts()] == ["grey"]


def test_widget_redraws_when_a_slider_moves(rgb):
    box = widgets.brightness_contrast(rgb)
    assert isinstance(box, widgets.BrightnessContrast)
    first = bytes(box.picture.value)  # the Image widget holds a memoryview
    assert first.startswith(PNG)
    torch.testing.assert_close(box.adjusted, rgb)
    box.contrast.value = 2.0
    second = bytes(box.picture.value)
    assert second.startswith(PNG) and second != first
    torch.testing.assert_close(box.adjusted, widgets.adjust(rgb, 0.0, 2.0))
    box.brightness.value = -0.3
    assert bytes(box.picture.value) not in (first, second)
    assert box.brightness.continuous_update is False  # one redraw per release, not per pixel
    assert "course-brightness-contrast" in box._dom_classes
