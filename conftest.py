"""pytest configuration for the whole repository (tests/ and nbval runs of solutions/).

`make test` runs pytest-xdist with the scheduler below: the cells of one notebook (one nbval
kernel) and the tests of one module stay on one worker, in order, except that the per-chapter
cases of the heavy parametrized modules (mutants, round trip, release) are units of their own,
so that two workers share them evenly. Heavy units are queued first, so that the run does not
end with one worker busy on a long unit while the other idles.
"""

from __future__ import annotations

import pytest

#: Modules whose parametrized cases (one per chapter) are independent scheduling units.
SPLIT_MODULES = ("tests/test_mutants.py", "tests/test_roundtrip.py", "tests/test_release.py",
                 "tests/test_feedback_hidden.py")
#: Queue order: earlier entries first (substrings of node ids); the rest keep collection order.
HEAVY_FIRST = ("tests/test_mutants.py", "tests/test_roundtrip.py", "tests/test_browser.py",
               "tests/test_hostile.py", "tests/test_parallel_grading.py", "tests/test_lms.py",
               "tests/test_nbgrader_traps.py", ".ipynb", "tests/test_release.py")


def _rank(nodeid: str) -> int:
    return next((i for i, key in enumerate(HEAVY_FIRST) if key in nodeid), len(HEAVY_FIRST))


def pytest_collection_modifyitems(config, items):
    """Mark notebook executions as slow (`make test-fast` leaves them out); heavy work first."""
    for item in items:
        if str(getattr(item, "path", "")).endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
    # stable: the cells of a notebook keep their order; chapters interleave mutants/round trip
    def key(item):
        rank = _rank(item.nodeid)
        if rank < 2:  # mutants and round trip of one chapter side by side
            return (0, item.nodeid.split("[")[-1], rank)
        return (rank, "", 0)

    items.sort(key=key)


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class CourseScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(SPLIT_MODULES) and "[" in nodeid:
                return nodeid
            return super()._split_scope(nodeid)

    config.option.loadscopereorder = False  # keep the order chosen above
    return CourseScheduling(config, log)
