"""
The marker audit: which exercises does each test really run?

`python -m nanorm.course --audit=true` runs the suite in this tree with a line tracer on the solution
regions (subprocesses included, through a generated sitecustomize.py on PYTHONPATH; pytest names the
running test in PYTEST_CURRENT_TEST) and lists every test that runs an exercise's code without carrying
its `@pytest.mark.exercise` marker (the rule: nanorm/course/assignments.py). A test may carry a marker
it does not run itself when a shared fixture ran that code first (the pipeline's SFT run).
"""

import json
import os
import subprocess
import sys

from nanorm.course.assignments import ROOT, all_exercises, graded_tests

_TRACER = r"""
import atexit, json, os, sys, threading
_regions = {os.path.realpath(k): v for k, v in json.load(open(os.environ["NANORM_AUDIT_REGIONS"])).items()}
_hits = set()
def _line(frame, event, arg):
    if event == "line":
        for begin, end, label in _regions[frame.f_code.co_filename]:
            if begin < frame.f_lineno < end:
                _hits.add((label, os.environ.get("PYTEST_CURRENT_TEST", "")))
    return _line
def _call(frame, event, arg):
    return _line if frame.f_code.co_filename in _regions else None
sys.settrace(_call)
threading.settrace(_call)
@atexit.register
def _dump():
    with open(os.environ["NANORM_AUDIT_HITS"], "a") as f:
        f.writelines(f"{label}\t{test}\n" for label, test in sorted(_hits))
"""


def audit(root=ROOT, pytest_args=()):
    """Run the suite under the tracer; returns {test id: set of labels run} (parametrized ids merged)."""
    import tempfile
    exercises = all_exercises(root)
    regions = {}
    for ex in exercises:
        regions.setdefault(os.path.realpath(os.path.join(root, ex.path)), []).append([ex.begin, ex.end, ex.label])
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "sitecustomize.py"), "w") as f:
            f.write(_TRACER)
        with open(os.path.join(tmp, "regions.json"), "w") as f:
            json.dump(regions, f)
        hits_path = os.path.join(tmp, "hits.tsv")
        env = dict(os.environ, NANORM_AUDIT_REGIONS=os.path.join(tmp, "regions.json"), NANORM_AUDIT_HITS=hits_path,
                   PYTHONPATH=os.pathsep.join(p for p in (tmp, os.environ.get("PYTHONPATH")) if p))
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests",
                                 "--deselect", "tests/test_assignments.py", *pytest_args], cwd=root, env=env)
        if result.returncode != 0:
            raise SystemExit("error: the suite must pass in this tree before its markers can be audited")
        ran = {}
        with open(hits_path) as f:
            for line in f:
                label, test = line.rstrip("\n").split("\t")
                test = test.rsplit(" (", 1)[0].split("[")[0]    # "id (call)" -> id; parametrized cases merged
                if test:
                    ran.setdefault(test, set()).add(label)
    return ran


def report_audit(root=ROOT):
    ran = audit(root)
    marked = {}
    for label, tests in graded_tests(root).items():
        for t in tests:
            marked.setdefault(t, set()).add(label)
    missing = {t: ran[t] - marked.get(t, set()) for t in ran if ran[t] - marked.get(t, set())}
    extra = {t: marked[t] - ran.get(t, set()) for t in marked if marked[t] - ran.get(t, set())}
    key = lambda s: tuple(map(int, s.split(".")))
    fmt = lambda labels: ", ".join(f'"{l}"' for l in sorted(labels, key=key))
    for t, labels in sorted(extra.items()):
        print(f"note: {t} is marked {fmt(labels)} but did not run that code itself (a shared fixture may have)")
    for t, labels in sorted(missing.items()):
        every = fmt(ran[t] | marked.get(t, set()))
        print(f"MISSING: {t} runs exercise {fmt(labels)}: mark it @pytest.mark.exercise({every})")
    print(f"audit: {len(ran)} tests run graded code; {len(missing)} lack a marker")
    if missing:
        raise SystemExit(1)
