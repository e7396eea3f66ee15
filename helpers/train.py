"""A small, readable training loop: :func:`fit` with a progress bar and a history.

Chapter 4 asks you to write this loop yourself; later chapters call it to keep the focus on
their own topic. It is deliberately plain: nothing here that the course does not teach.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from . import grading

__all__ = ["fit", "evaluate", "accuracy"]

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | float]


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of rows whose arg-max over classes equals the target class.

    Args:
        logits: (B, K) scores for K classes.
        target: (B,) class indices.
    """
    if logits.dim() != 2 or target.dim() != 1 or len(logits) != len(target):
        raise ValueError(f"logits must be (B, K) and target (B,), got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    return (logits.argmax(dim=1) == target).float().mean().item()


def _batches(loader: Iterable, name: str) -> Iterable:
    if not hasattr(loader, "__iter__"):
        raise TypeError(f"{name} must be an iterable of (inputs, targets) batches, "
                        f"got {type(loader).__name__}")
    return loader


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, device) for b in batch)
    return batch


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, loss_fn: Callable,
             device: torch.device | None = None,
             metrics: Mapping[str, Metric] | None = None) -> dict[str, float]:
    """Average loss (and metrics) of ``model`` over ``loader``, in eval mode, without gradients.

    Averages are weighted by batch size, so a smaller last batch counts for what it is.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {"loss": 0.0, **{k: 0.0 for k in (metrics or {})}}
    count = 0
    for inputs, targets in _batches(loader, "loader"):
        inputs, targets = _to(inputs, device), _to(targets, device)
        outputs = model(inputs)
        n = len(targets)
        totals["loss"] += float(loss_fn(outputs, targets)) * n
        for key, metric in (metrics or {}).items():
            totals[key] += float(metric(outputs, targets)) * n
        count += n
    model.train(was_training)
    if count == 0:
        raise ValueError("loader yielded no batches")
    return {k: v / count for k, v in totals.items()}


def fit(model: nn.Module, train_loader: Iterable, loss_fn: Callable,
        optimizer: torch.optim.Optimizer, epochs: int = 10, val_loader: Iterable | None = None,
        device: torch.device | None = None, metrics: Mapping[str, Metric] | None = None,
        scheduler: Any = None, clip_grad_norm: float | None = None,
        progress: bool | None = None) -> dict[str, list[float]]:
    """Train ``model`` for ``epochs`` epochs and return the history of per-epoch averages.

    Each step: ``zero_grad`` -> forward -> loss -> ``backward`` -> optional clipping -> ``step``.
    ``scheduler.step()`` (if given) runs once per epoch.

    Returns:
        ``{"train_loss": [...], "val_loss": [...], "val_<metric>": [...]}`` with one value per
        epoch (validation keys only with ``val_loader``).

    Raises:
        FloatingPointError: when the loss becomes NaN or infinite, naming the epoch and step.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be > 0 or None, got {clip_grad_norm!r}")
    device = device or next(model.parameters()).device
    show = (not grading()) if progress is None else progress
    from tqdm.auto import tqdm

    history: dict[str, list[float]] = {"train_loss": []}
    bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not show, leave=True)
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for step, (inputs, targets) in enumerate(_batches(train_loader, "train_loader")):
            inputs, targets = _to(inputs, device), _to(targets, device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), targets)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch}, step "
                                         f"{step}: lower the learning rate or check the data")
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            total += loss.item() * len(targets)
            count += len(targets)
        if count == 0:
            raise ValueError("train_loader yielded no batches")
        history["train_loss"].append(total / count)
        if scheduler is not None:
            scheduler.step()
        shown = {"train_loss": f"{total / count:.4f}"}
        if val_loader is not None:
            for key, value in evaluate(model, val_loader, loss_fn, device, metrics).items():
                history.setdefault(f"val_{key}", []).append(value)
                shown[f"val_{key}"] = f"{value:.4f}"
        bar.set_postfix(shown)
    return history
