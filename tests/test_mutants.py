"""Every mutant, swapped alone into its solution cell, fails a test of its own exercise."""

import pytest

from autograde.course import SOLUTIONS, load_mutants
from autograde.mutation import run_notebook

from .conftest import NOTEBOOK_IDS, NOTEBOOKS


@pytest.mark.slow
@pytest.mark.parametrize("assignment,name", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_every_mutant_is_caught(assignment, name):
    mutants = [m for m in load_mutants(assignment) if m.get("notebook", name) == name]
    report = run_notebook(SOLUTIONS / assignment / f"{name}.ipynb", mutants, log=lambda *_: None)
    print(f"{assignment}/{name}: {sum(m.caught for m in report.mutants)}/{len(report.mutants)} "
          f"mutants caught in {report.seconds:.1f} s")
    assert not report.solution_failures, "\n".join(report.solution_failures)
    survivors = [f"{m.exercise} {m.name!r}: {m.detail}" for m in report.mutants if not m.caught]
    assert not survivors, "mutants the tests do not catch:\n" + "\n".join(survivors)
    unrestored = [f"{m.exercise} {m.name!r}: {m.detail}" for m in report.mutants if not m.restored]
    assert not unrestored, "mutants that leave the notebook broken:\n" + "\n".join(unrestored)
