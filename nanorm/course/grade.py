"""
The grader: score student copies exercise by exercise, each exercise in isolation.

    python -m nanorm.course --grade=student            # one student copy (a folder holding .nanorm-student)
    python -m nanorm.course --grade=submissions        # every student copy in a folder of them

Run it from the instructor's repository. For each exercise it takes THIS repository, puts the student's
lines of that one region in place of the reference lines, and runs THIS repository's tests of that
exercise in the unit-test modules (GRADING_MODULES: hand-worked values, and the hidden tests' naive
references that the student copy leaves out; a second or so each). Everything else is the reference: a mistake in one exercise costs that exercise only, and
neither the student's tests nor the rest of the student's code is ever run, so editing the tests or
another file of the copy changes nothing.

An exercise scores 1 point when every one of its grading tests passes, else 0; a region the student
deleted or whose markers were changed scores 0. Output: a table, and grades.json (--grade_out) with the
points, the passed / failed tests and the first failure of every exercise of every student.

The grading runs in this process (pytest.main per exercise, the repository's modules re-imported each
time); each test is stopped after --grade_timeout seconds (an endless loop fails its exercise). Identical
student regions are graded once (an untouched stub, a correct answer copied from the reference).
"""

import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile

from nanorm.course.assignments import (BEGIN_RE, END_RE, LABEL_RE, ROOT, STAMP, all_exercises, graded_tests,
                                      repo_files)

GRADING_MODULES = ("tests/test_model.py", "tests/test_sft_loss.py", "tests/test_reward_loss.py",
                   "tests/test_ppo_math.py", "tests/test_dpo_math.py",
                   "tests/hidden/test_reference_reward_loss.py", "tests/hidden/test_reference_gae.py")


def student_copies(path):
    """The student copies at `path`: itself if it is one, else its subfolders that are (sorted)."""
    if not os.path.isdir(path):
        raise SystemExit(f"error: --grade={path}: not a folder")
    if os.path.isfile(os.path.join(path, STAMP)):
        return [path]
    copies = sorted(os.path.join(path, d) for d in os.listdir(path)
                    if os.path.isfile(os.path.join(path, d, STAMP)))
    if not copies:
        raise SystemExit(f"error: --grade={path}: neither a student copy nor a folder of them (no {STAMP} file)")
    return copies


def student_body(copy, ex):
    """The student's lines of exercise `ex` (between its BEGIN marker and the next END marker), or
    (None, why). Only this region's markers are looked for: a broken marker elsewhere in the file costs
    the exercise it belongs to, not its neighbours."""
    path = os.path.join(copy, ex.path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines(keepends=True)
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{ex.path}: {e.__class__.__name__}: {e}"
    for i, line in enumerate(lines):
        begin, label = BEGIN_RE.match(line), None
        if begin:
            label = LABEL_RE.match(begin["rest"])
        if label and (int(label["lesson"]), int(label["number"])) == (ex.lesson, ex.number):
            for j in range(i + 1, len(lines)):
                if END_RE.match(lines[j]):
                    return lines[i + 1:j], ""
            return None, f"{ex.path}:{i + 1}: the region of exercise {ex.label} never ends"
    return None, f"{ex.path}: no region labelled lesson {ex.lesson}, exercise {ex.number}"


class _Results:
    """A pytest plugin: counts the tests that pass and fail, keeps the first failure, stops endless tests."""

    def __init__(self, timeout):
        self.passed, self.failed, self.first_failure, self.timeout = 0, 0, "", timeout

    def pytest_runtest_setup(self, item):
        signal.signal(signal.SIGALRM, self._too_long)
        signal.alarm(self.timeout)

    def pytest_runtest_teardown(self, item):
        signal.alarm(0)

    def _too_long(self, signum, frame):
        raise TimeoutError(f"the test ran past {self.timeout} s")

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed += 1
            if not self.first_failure:
                crash = getattr(report.longrepr, "reprcrash", None)
                why = crash.message if crash is not None else str(report.longrepr).strip()
                self.first_failure = f"{report.nodeid}: {why.splitlines()[0][:300]}"
        elif report.when == "call" and report.passed:
            self.passed += 1

    def pytest_collectreport(self, report):
        if report.failed:
            self.failed += 1
            self.first_failure = self.first_failure or f"collecting {report.nodeid}: failed"


def _forget_modules():
    """Drop the repository's modules (nanorm, the scripts, the tests) from sys.modules, wherever they were
    imported from, so that the next run imports the grafted tree afresh. The grader's own functions stay
    usable: dropping a module from sys.modules does not unload it."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("nanorm", "conftest") or name.startswith(("train_", "test_")):
            del sys.modules[name]


def run_grading_tests(tree, label, timeout, graded=None):
    """Run this repository's grading tests of `label` in `tree`; returns (passed, failed, first failure).
    graded: graded_tests(tree), if already read."""
    import pytest
    graded = {test.split("::")[0] for test in (graded or graded_tests(tree)).get(label, [])}
    modules = [m for m in GRADING_MODULES if m in graded]
    if not modules:
        return 0, 0, f"no test in {', '.join(GRADING_MODULES)} grades exercise {label}"
    results = _Results(timeout)
    _forget_modules()
    cwd, path = os.getcwd(), list(sys.path)
    try:
        os.chdir(tree)
        sys.path.insert(0, tree)
        pytest.main(["-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=", f"--rootdir={tree}",
                     f"--exercise={label}", *modules], plugins=[results])
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        _forget_modules()
    return results.passed, results.failed, results.first_failure


def grade(copies, root=ROOT, timeout=60):
    """{copy: {label: {points, passed, failed, why}}} for every exercise of this repository."""
    exercises = all_exercises(root)
    cache = {}   # (label, the student's lines) -> the grade: a region graded once however many share it
    out = {copy: {} for copy in copies}
    graded = graded_tests(root)
    with tempfile.TemporaryDirectory(prefix="nanorm-grade-") as tree:
        for rel in repo_files(root):   # the instructor's repository, tests included
            os.makedirs(os.path.dirname(os.path.join(tree, rel)), exist_ok=True)
            shutil.copy2(os.path.join(root, rel), os.path.join(tree, rel))
        for ex in exercises:
            with open(os.path.join(root, ex.path), encoding="utf-8") as f:
                reference = f.read().splitlines(keepends=True)
            for copy in copies:
                body, why = student_body(copy, ex)
                if body is None:
                    out[copy][ex.label] = {"points": 0, "passed": 0, "failed": 0, "why": why}
                    continue
                key = (ex.label, hashlib.sha256("".join(body).encode()).hexdigest())
                if key not in cache:
                    grafted = reference[:ex.begin] + body + reference[ex.end - 1:]
                    with open(os.path.join(tree, ex.path), "w", encoding="utf-8") as f:
                        f.writelines(grafted)
                    passed, failed, first = run_grading_tests(tree, ex.label, timeout, graded)
                    ok = passed > 0 and failed == 0
                    cache[key] = {"points": int(ok), "passed": passed, "failed": failed,
                                  "why": "" if ok else first or "no grading test ran"}
                out[copy][ex.label] = cache[key]
            with open(os.path.join(tree, ex.path), "w", encoding="utf-8") as f:
                f.writelines(reference)   # the reference again, for the next exercise
    return out


def report_grades(path, out_path="", timeout=60, root=ROOT):
    """Grade the copies at `path`, print the table, write the JSON; returns the JSON's dict."""
    copies = student_copies(path)
    grades = grade(copies, root, timeout)
    labels = [ex.label for ex in all_exercises(root)]
    res = {"exercises": labels, "max_points": len(labels), "students": {}}
    names = {copy: os.path.basename(os.path.normpath(copy)) for copy in copies}
    width = max(8, *(len(n) for n in names.values()))
    print(f"{'student':<{width}} " + " ".join(f"{label:>4}" for label in labels) + "  total")
    for copy in copies:
        g = grades[copy]
        total = sum(e["points"] for e in g.values())
        res["students"][names[copy]] = {"path": os.path.abspath(copy), "total": total, "exercises": g}
        print(f"{names[copy]:<{width}} " + " ".join(f"{g[label]['points']:>4}" for label in labels) +
              f"  {total}/{len(labels)}")
    out_path = out_path or os.path.join(path, "grades.json")
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {out_path} (each exercise's passed and failed tests, and its first failure)")
    return res
