"""`make student-bundle`: the zip a teacher hands out to students.

It holds what students need and nothing of grading::

    dl-course-student/README.md          docs/STUDENT_README.md
    dl-course-student/notebooks/...      the released notebooks (no solutions, no hidden tests)
    dl-course-student/helpers/*.py       the helpers package
    dl-course-student/pyproject.toml, requirements.lock, environment.yml

and refuses to write it when any file would contain a solution region or hidden tests. The
archive is reproducible: sorted entries, fixed timestamps. Standard library only, so it runs
on a fresh clone without the environment: ``python3 tools/student_bundle.py [--out PATH]``.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "dl-course-student"
DEFAULT_OUT = ROOT / "dist" / f"{PREFIX}.zip"
#: (path in the repository, path in the bundle)
FILES = [
    ("docs/STUDENT_README.md", "README.md"),
    ("pyproject.toml", "pyproject.toml"),
    ("requirements.lock", "requirements.lock"),
    ("environment.yml", "environment.yml"),
]
FOLDERS = {"notebooks": ("*",), "helpers": ("*.py",)}
SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints"}
#: markers of what students must never get: solution regions and hidden tests
FORBIDDEN = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
FIXED_TIME = (2026, 1, 1, 0, 0, 0)


def contents() -> list[tuple[Path, str]]:
    """(source file, name in the bundle) of every file of the bundle, sorted by name."""
    entries = [(ROOT / src, dst) for src, dst in FILES]
    for folder, patterns in FOLDERS.items():
        for pattern in patterns:
            for path in (ROOT / folder).rglob(pattern):
                rel = path.relative_to(ROOT)
                if path.is_file() and not SKIPPED_PARTS & set(rel.parts) \
                        and not path.name.startswith("."):
                    entries.append((path, rel.as_posix()))
    missing = [str(src.relative_to(ROOT)) for src, _ in entries if not src.exists()]
    if missing:
        raise FileNotFoundError(f"the student bundle needs {missing}")
    return sorted(set(entries), key=lambda e: e[1])


def check(entries: list[tuple[Path, str]]) -> None:
    """Refuse solutions and hidden tests: no file may contain their markers."""
    bad = [f"{name} ({marker})" for src, name in entries
           for marker in FORBIDDEN if marker.encode() in src.read_bytes()]
    if bad:
        raise ValueError("the student bundle would contain solutions or hidden tests: "
                         + ", ".join(bad) + " -- regenerate notebooks/ with `make release`")


def build(out: Path = DEFAULT_OUT) -> Path:
    """Write the bundle to ``out`` (a .zip) and return its path."""
    entries = contents()
    check(entries)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for src, name in entries:
            info = zipfile.ZipInfo(f"{PREFIX}/{name}", date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, src.read_bytes())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the zip to write")
    args = parser.parse_args(argv)
    out = build(args.out.resolve())
    with zipfile.ZipFile(out) as zf:
        count = len(zf.namelist())
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"wrote {shown}: {count} files, {out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
