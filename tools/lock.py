"""Write requirements.lock and environment.yml from the packages installed in .venv.

Run by `make lock` after `pip install -r requirements.in` in a fresh environment; the test
tests/test_environment.py fails when the two files disagree.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "# Exact pins of the course environment (Python {py}). Regenerate with `make lock`.\n"


def main() -> None:
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()
    pins = sorted((line for line in frozen if "==" in line and not line.startswith("-e")),
                  key=str.lower)
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    (ROOT / "requirements.lock").write_text(HEADER.format(py=py) + "\n".join(pins) + "\n")
    env = [
        "# The course environment for conda/mamba and Binder: the same pins as requirements.lock.",
        "# Regenerate both with `make lock`; tests/test_environment.py checks they agree.",
        "name: dl-course",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={py}",
        "  - pip",
        "  - pip:",
        *[f"      - {pin}" for pin in pins],
        "      - -e .",
    ]
    (ROOT / "environment.yml").write_text("\n".join(env) + "\n")
    print(f"pinned {len(pins)} packages for Python {py}")


if __name__ == "__main__":
    main()
