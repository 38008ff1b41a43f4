"""Collect ``bench_*.py`` here as test modules, so ``python -m pytest benches --benchmark-only``
runs every microbenchmark without them being mistaken for the test suite."""

import pytest


def pytest_collect_file(file_path, parent):
    # a file named on the command line is already collected by pytest's python plugin
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
