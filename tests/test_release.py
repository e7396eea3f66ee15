"""notebooks/ is exactly what `nbgrader generate_assignment` makes from solutions/."""

import pytest

from autograde.course import RELEASE, Course

from .conftest import ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_regenerated(assignment, tmp_path):
    course = Course.build(tmp_path, [assignment])
    fresh = course.generate(assignment)
    made = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(RELEASE / assignment)
                       for p in (RELEASE / assignment).rglob("*") if p.is_file())
    assert made == committed, f"files differ: generated {made}, committed {committed}"
    for rel in made:
        assert (fresh / rel).read_bytes() == (RELEASE / assignment / rel).read_bytes(), (
            f"notebooks/{assignment}/{rel} is stale: run `make release A={assignment}`")
    for rel in made:
        text = (fresh / rel).read_text()
        assert "### BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert '"jupytext"' not in text, "released notebooks must not be paired with a script"
