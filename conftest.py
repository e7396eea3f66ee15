"""pytest configuration for the whole repository (tests/ and nbval runs of solutions/).

`make test` runs pytest-xdist with `--dist loadscope`: the cells of one notebook (one nbval
kernel) and the tests of one module stay on one worker, in order.
"""

import pytest


def pytest_collection_modifyitems(config, items):
    """Mark notebook executions as slow, so that `make test-fast` leaves them out."""
    for item in items:
        if str(getattr(item, "path", "")).endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
