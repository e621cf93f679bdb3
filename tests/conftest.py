"""The `exercise` marker: which tests grade which exercise of the course (see nanorm/course/assignments.py).

    python -m pytest -q tests --exercise=2.1     # only the tests that grade lesson 2, exercise 1
    python -m pytest -q tests --exercise=5       # ... every exercise of lesson 5
    python -m pytest -q tests -m exercise        # every graded test
"""

import re

import pytest

LABEL = re.compile(r"^\d+\.\d+$")


def pytest_addoption(parser):
    parser.addoption("--exercise", action="append", default=[], metavar="N.M",
                     help="run only the tests that grade exercise N.M (or every exercise of lesson N); repeatable")


def pytest_configure(config):
    config.addinivalue_line("markers", "exercise(*labels): the test grades these exercises (\"N.M\")")


def exercise_labels(item):
    labels = []
    for mark in item.iter_markers("exercise"):
        for label in mark.args:
            if not (isinstance(label, str) and LABEL.match(label)):
                raise pytest.UsageError(f"{item.nodeid}: exercise label {label!r} is not of the form 'N.M'")
            labels.append(label)
    return sorted(set(labels), key=lambda s: tuple(map(int, s.split("."))))


def pytest_collection_modifyitems(config, items):
    wanted = config.getoption("--exercise")
    keep, drop = [], []
    for item in items:
        labels = exercise_labels(item)
        item.user_properties.append(("exercise", ",".join(labels)))   # read back from JUnit XML
        if not wanted or any(l == w or l.startswith(w + ".") for l in labels for w in wanted):
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
