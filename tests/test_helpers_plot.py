"""Unit tests of helpers.plot: each figure draws, labels itself, and rejects bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import plot  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_training_curves():
    fig = plot.training_curves({"train_loss": [3, 2, 1], "val_loss": [3.5, 2.5, 2.0],
                                "acc": [1, 2, 3]})
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["train_loss", "val_loss"]
    assert ax.get_xlabel() == "epoch" and ax.get_legend() is not None
    fig = plot.training_curves({"acc": torch.tensor([0.5, 0.9])}, keys=["acc"], logy=True,
                                ylabel="acc")
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="non-empty"):
        plot.training_curves({})
    with pytest.raises(ValueError, match="no keys"):
        plot.training_curves({"acc": [1]})
    with pytest.raises(ValueError, match="not in history"):
        plot.training_curves({"loss": [1]}, keys=["val"])


def test_image_grid_layouts():
    fig = plot.image_grid(torch.rand(10, 1, 8, 8), titles=[str(i) for i in range(10)], ncols=4,
                          title="digits")
    assert len(fig.axes) == 12 and fig._suptitle.get_text() == "digits"
    assert len(plot.image_grid(np.random.rand(3, 3, 5, 5)).axes) == 3  # (N, C, H, W) colour
    assert len(plot.image_grid(np.random.rand(2, 5, 5, 3)).axes) == 2  # (N, H, W, C)
    with pytest.raises(ValueError, match="non-empty batch"):
        plot.image_grid(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="titles"):
        plot.image_grid(np.zeros((2, 4, 4)), titles=["one"])
    with pytest.raises(ValueError, match="ncols"):
        plot.image_grid(np.zeros((2, 4, 4)), ncols=0)


def test_heatmap():
    fig = plot.heatmap(torch.randn(5, 6), title="t", xlabel="x", ylabel="y", cbar_label="c",
                       symmetric=True)
    ax = fig.axes[0]
    lo, hi = ax.images[0].get_clim()
    assert lo == -hi and ax.get_title() == "t" and len(fig.axes) == 2  # the colour bar
    fig = plot.heatmap(np.ones((3, 3)), extent=(0, 1, 0, 1))
    assert fig.axes[0].images[0].origin == "lower"
    with pytest.raises(ValueError, match="2-D"):
        plot.heatmap(np.zeros(3))


def test_broadcasting_picture():
    fig = plot.broadcasting(torch.tensor([[0.0], [10.0]]), torch.tensor([1.0, 2.0, 3.0]), "+")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[2] == "a + b: (2, 3)"
    texts = [t.get_text() for t in fig.axes[2].texts]
    assert texts == ["1", "2", "3", "11", "12", "13"]
    fig = plot.broadcasting(np.array([1.0, 2.0]), np.array(3.0), "*")
    assert [t.get_text() for t in fig.axes[2].texts] == ["3", "6"]
    with pytest.raises(ValueError, match="do not broadcast"):
        plot.broadcasting(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="op must be"):
        plot.broadcasting(np.zeros(3), np.zeros(3), "/")
    with pytest.raises(ValueError, match="1-D or 2-D"):
        plot.broadcasting(np.zeros((2, 2, 2)), np.zeros(2))
