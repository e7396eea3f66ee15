"""Unit tests of helpers.train: fit learns, evaluate averages correctly, errors are clear."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers import train


def loaders(n=64):
    torch.manual_seed(0)
    x = torch.randn(n, 2)
    y = (x[:, 0] + x[:, 1] > 0).long()
    ds = TensorDataset(x, y)
    return DataLoader(ds, batch_size=16, shuffle=True), DataLoader(ds, batch_size=24)


def test_fit_learns_and_records_history():
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    train_loader, val_loader = loaders()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
    history = train.fit(model, train_loader, nn.CrossEntropyLoss(), opt, epochs=15,
                        val_loader=val_loader, metrics={"acc": train.accuracy}, scheduler=sched,
                        clip_grad_norm=5.0, progress=False)
    assert set(history) == {"train_loss", "val_loss", "val_acc"}
    assert all(len(v) == 15 for v in history.values())
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_acc"][-1] >= 0.9
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 0.9**15)


def test_evaluate_weights_batches_by_size_and_restores_mode():
    model = nn.Linear(2, 2)
    model.train()
    _, val_loader = loaders(50)  # batches of 24, 24, 2
    loss_fn = nn.CrossEntropyLoss()
    got = train.evaluate(model, val_loader, loss_fn, metrics={"acc": train.accuracy})
    x, y = val_loader.dataset.tensors
    with torch.no_grad():
        assert got["loss"] == pytest.approx(loss_fn(model(x), y).item(), rel=1e-5)
    assert got["acc"] == pytest.approx(train.accuracy(model(x), y))
    assert model.training, "evaluate must restore train mode"
    with pytest.raises(ValueError, match="no batches"):
        train.evaluate(model, [], loss_fn)


def test_accuracy_checks_shapes():
    assert train.accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])) == 0.5
    with pytest.raises(ValueError, match="logits must be"):
        train.accuracy(torch.zeros(3), torch.zeros(3))


def test_fit_rejects_bad_input_and_diverging_loss():
    model = nn.Linear(2, 2)
    train_loader, _ = loaders()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="epochs"):
        train.fit(model, train_loader, loss, opt, epochs=0)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        train.fit(model, train_loader, loss, opt, clip_grad_norm=0)
    with pytest.raises(TypeError, match="iterable"):
        train.fit(model, 5, loss, opt, epochs=1, progress=False)
    with pytest.raises(ValueError, match="no batches"):
        train.fit(model, [], loss, opt, epochs=1, progress=False)
    with pytest.raises(FloatingPointError, match="epoch 1, step 0"):
        train.fit(model, train_loader, lambda out, y: out.sum() * float("nan"), opt, epochs=1,
                  progress=False)


def test_fit_moves_nested_batches_to_the_device():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1)

        def forward(self, pair):
            a, b = pair
            return self.lin(a + b).squeeze(-1)

    data = [((torch.randn(4, 2), torch.randn(4, 2)), torch.randn(4)) for _ in range(3)]
    model = Pair()
    history = train.fit(model, data, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.01),
                        epochs=2, device=torch.device("cpu"), progress=True)
    assert len(history["train_loss"]) == 2
