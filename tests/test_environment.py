"""The environment files agree, and the pinned torch/torchvision pair really works."""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock line {line!r} is not an exact pin"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_lock_pins_everything_exactly():
    pins = lock_pins()
    for needed in ["torch", "torchvision", "jupyterlab", "nbgrader", "nbval", "matplotlib",
                   "numpy", "scikit-learn", "scikit-image", "statsmodels", "tqdm", "ipywidgets",
                   "jupytext", "pytest"]:
        assert needed in pins, f"{needed} is missing from requirements.lock"
    assert pins["jupyterlab"].startswith("4."), "the course needs JupyterLab 4"
    assert pins["nbgrader"].startswith("0.9."), "the course needs nbgrader 0.9.x"


def test_environment_yml_matches_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    conda_python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    env_pins = {}
    for line in pip_section:
        if line.startswith("-e"):
            continue
        name, _, version = line.partition("==")
        env_pins[name.lower().replace("_", "-")] = version
    lock = lock_pins()
    only_lock = sorted(set(lock) - set(env_pins))
    only_env = sorted(set(env_pins) - set(lock))
    differ = sorted(k for k in set(lock) & set(env_pins) if lock[k] != env_pins[k])
    assert not (only_lock or only_env or differ), (
        f"environment.yml and requirements.lock disagree: only in the lock {only_lock}, only in "
        f"environment.yml {only_env}, different versions {differ}. Run `make lock`.")
    header = (ROOT / "requirements.lock").read_text().splitlines()[0]
    lock_python = re.search(r"Python (\d+\.\d+)", header).group(1)
    assert conda_python == f"python={lock_python}"


def test_installed_versions_match_lock():
    from importlib.metadata import version

    pins = lock_pins()
    for name in ["torch", "torchvision", "nbgrader", "jupyterlab", "numpy"]:
        installed = version(name)
        assert installed.split("+")[0] == pins[name].split("+")[0], (
            f"{name} {installed} is installed but the lock pins {pins[name]}: run `make install`")


def test_torchvision_matches_torch_and_nms_runs():
    import torch
    import torchvision
    from torchvision.ops import nms

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    keep = nms(boxes, scores, iou_threshold=0.5)
    # boxes 0 and 1 overlap with IoU 81/119 = 0.68 > 0.5, so box 1 is suppressed
    assert keep.tolist() == [0, 2]
    model = torchvision.models.resnet18(weights=None).eval()  # no download: random weights
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)
    assert sys.version_info >= (3, 10)
