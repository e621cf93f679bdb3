"""The course tool (nanorm/course/): regions, stubs, and the student copy's test suite.

The main check generates a student copy (every exercise stubbed) in a temporary directory, runs its
test suite there, and asserts that the failing tests are EXACTLY the tests marked
@pytest.mark.exercise, each failing with the message of one of its own exercises. That the same tests
pass in this tree is what the rest of this suite shows. This file is not copied into the student copy.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from nanorm.course import assignments
from nanorm.course.assignments import RegionError, find_exercises, stub_source

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the exercises the course promises (lessons/README.md); more may exist
CORE = {
    "1.1": "nanorm/model.py::CausalSelfAttention.forward",
    "2.1": "nanorm/sft.py::sft_loss",
    "3.1": "nanorm/model.py::ScalarHeadModel.__init__",
    "3.2": "nanorm/model.py::ScalarHeadModel.score",
    "3.3": "nanorm/reward.py::bradley_terry_loss",
    "5.1": "nanorm/ppo.py::kl_penalized_rewards",
    "5.2": "nanorm/ppo.py::gae",
    "5.3": "nanorm/ppo.py::ppo_policy_loss",
    "8.1": "nanorm/dpo.py::dpo_loss",
}


def lines(*xs):
    return "".join(x + "\n" for x in xs)


# -----------------------------------------------------------------------------
# regions and stubs, on hand-written sources

def test_stub_keeps_markers_and_leading_comments_at_the_region_indentation():
    src = lines("def f(x):",
                "    y = 2",
                "    if x:",
                "        # BEGIN SOLUTION lesson 9, exercise 3: double it",
                "        # y = 2 x   (the hint stays)",
                "        y = 2 * x  # the answer goes",
                "        # END SOLUTION",
                "    return y")
    new, stubbed = stub_source(src, "f.py")
    assert new == lines("def f(x):",
                        "    y = 2",
                        "    if x:",
                        "        # BEGIN SOLUTION lesson 9, exercise 3: double it",
                        "        # y = 2 x   (the hint stays)",
                        "        raise NotImplementedError('lesson 9, exercise 3: double it')",
                        "        # END SOLUTION",
                        "    return y")
    [ex] = stubbed
    assert (ex.label, ex.symbol, ex.begin, ex.end, ex.what) == ("9.3", "f", 4, 7, "double it")
    namespace = {}
    exec(new, namespace)
    assert namespace["f"](0) == 2
    with pytest.raises(NotImplementedError, match="lesson 9, exercise 3"):
        namespace["f"](1)
    assert stub_source(src, "f.py", only={"1.1"}) == (src, [])     # not selected: unchanged


def test_methods_get_qualified_names():
    src = lines("class A:",
                "    def g(self):",
                "        # BEGIN SOLUTION lesson 1, exercise 2: g",
                "        return 1",
                "        # END SOLUTION")
    assert [ex.symbol for ex in find_exercises(src, "a.py")] == ["A.g"]


@pytest.mark.parametrize("body,words", [
    (["    # BEGIN SOLUTION", "    return 1", "    # END SOLUTION"], "expected '# BEGIN SOLUTION lesson N"),
    (["    # BEGIN SOLUTION lesson 1, exercise 1", "    return 1", "    # END SOLUTION"], "expected"),
    (["    # BEGIN SOLUTION lesson 1, exercise 1: x", "    return 1"], "never ends"),
    (["    return 1", "    # END SOLUTION"], "without a BEGIN"),
    (["    # BEGIN SOLUTION lesson 1, exercise 1: x", "    # BEGIN SOLUTION lesson 1, exercise 2: y"], "inside"),
    (["    # BEGIN SOLUTION lesson 1, exercise 1: x", "    return 1", "# END SOLUTION"], "not indented like"),
    (["    # BEGIN SOLUTION lesson 1, exercise 1: x", "    # only a comment", "    # END SOLUTION"], "without code"),
])
def test_malformed_regions_are_refused(body, words):
    with pytest.raises(RegionError, match=words):
        find_exercises(lines("def f():", *body), "bad.py")


def test_markers_are_read_from_decorators_classes_modules_and_named_marks(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(lines(
        "import pytest",
        "pytestmark = pytest.mark.exercise('9.1')",
        "CHAIN = pytest.mark.exercise('9.2', '9.3')",
        "@CHAIN",
        "def test_a(): pass",
        "@pytest.mark.exercise('9.4')",
        "class TestB:",
        "    def test_b(self): pass",
        "def test_c(): pass"))
    assert assignments.graded_tests(str(tmp_path)) == {
        "9.1": ["tests/test_x.py::test_a", "tests/test_x.py::TestB::test_b", "tests/test_x.py::test_c"],
        "9.2": ["tests/test_x.py::test_a"], "9.3": ["tests/test_x.py::test_a"],
        "9.4": ["tests/test_x.py::TestB::test_b"]}


def test_every_region_is_labelled_unique_and_graded():
    exercises = assignments.all_exercises()
    where = {ex.label: f"{ex.path}::{ex.symbol}" for ex in exercises}
    for label, symbol in CORE.items():
        assert where.get(label) == symbol, f"exercise {label} should be {symbol}, found {where.get(label)}"
    graded = assignments.graded_tests()
    assert set(graded) <= set(where), f"markers name exercises with no region: {sorted(set(graded) - set(where))}"
    assert not [l for l in where if not graded.get(l)], "an exercise that no test grades"


def test_refuses_to_overwrite_or_to_write_into_the_source(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not empty; pass --force=true"):
        assignments.make_student_copy(tmp_path)
    with pytest.raises(SystemExit, match="not a student copy"):
        assignments.make_student_copy(tmp_path, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"               # untouched
    for bad in (ROOT, os.path.dirname(ROOT), os.path.join(ROOT, "nanorm")):
        with pytest.raises(SystemExit, match="choose another directory"):
            assignments.make_student_copy(bad, force=True)
    with pytest.raises(SystemExit, match="no exercise 0.9"):
        assignments.make_student_copy(tmp_path / "new", only={"0.9"})
    assert not (tmp_path / "new").exists()


# -----------------------------------------------------------------------------
# the student copy, end to end

def run_student_suite(student, xml_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(student)                                     # the copy's nanorm, not this one
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests",
                    f"--junitxml={xml_path}", "-o", "junit_logging=out-err"], cwd=student, env=env, capture_output=True, text=True, timeout=600)
    results = {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        file = case.get("classname").replace(".", "/") + ".py"
        labels = [p.get("value") for p in case.iter("property") if p.get("name") == "exercise"]
        labels = [l for l in ",".join(labels).split(",") if l]
        if any(c.tag == "skipped" for c in case):   # e.g. the real-data tests where shared/realdata is absent:
            continue                                  # a skipped test neither passes nor fails its exercise
        bad = [c for c in case if c.tag in ("failure", "error")]
        # the failure itself, and what the test printed (a script run in a subprocess may only print its error)
        shown = bad + [c for c in case if c.tag in ("system-out", "system-err")] if bad else []
        message = " ".join((c.get("message") or "") + " " + (c.text or "") for c in shown)
        results[f"{file}::{case.get('name')}"] = (labels, bool(bad), message)
    return results


def test_student_copy_fails_exactly_the_graded_tests(tmp_path):
    student = tmp_path / "student"
    made = subprocess.run([sys.executable, "-m", "nanorm.course", f"--out={student}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    exercises = assignments.all_exercises()
    assert f"{len(exercises)} exercises stubbed" in made.stdout
    assert not (student / "tests" / "test_assignments.py").exists()
    for ex in exercises:                                                 # the solution is gone, the stub is there
        text = (student / ex.path).read_text()
        assert f"raise NotImplementedError({ex.message!r})" in text
    assert "scaled_dot_product_attention(q, k, v" not in (student / "nanorm" / "model.py").read_text()
    # the hidden tests' naive references (each a solution) stay with the instructor
    assert not (student / "tests" / "hidden").exists()
    copied = "\n".join(p.read_text() for p in student.rglob("*.py"))
    for reference in ("def naive_loss(", "def gae_reference(", "for t in reversed(range(L))"):
        assert reference not in copied, reference
    code = "\n".join(p.read_text() for p in [*student.glob("train_*.py"), *(student / "nanorm").rglob("*.py")])
    for reference in ("logsigmoid(", ".gather(-1"):   # the BT and DPO losses, token log-probs: stubs only
        assert reference not in code, reference
    # a second run replaces its own copy only with --force
    again = subprocess.run([sys.executable, "-m", "nanorm.course", f"--out={student}", "--only=2.1"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "--force=true" in again.stderr

    results = run_student_suite(student, tmp_path / "junit.xml")
    graded = {t for t, (labels, _, _) in results.items() if labels}
    failing = {t for t, (_, failed, _) in results.items() if failed}
    assert len(results) > 50 and graded   # (skipped tests are left out of results)
    assert not failing - graded, ("these tests fail in the student copy but carry no exercise marker; add "
                                  "@pytest.mark.exercise(...) with every exercise they run (python -m "
                                  f"nanorm.course --audit=true lists them): {sorted(failing - graded)}")
    assert not graded - failing, f"these graded tests pass with the exercise stubbed: {sorted(graded - failing)}"
    for test in sorted(failing):
        labels, _, message = results[test]
        wanted = [f"lesson {l.split('.')[0]}, exercise {l.split('.')[1]}" for l in labels]
        assert any(w in message for w in wanted), f"{test} should fail with one of {wanted}, got: {message[:500]}"

    # --force replaces the copy; --only stubs just the exercises named
    again = subprocess.run([sys.executable, "-m", "nanorm.course", f"--out={student}", "--force=true",
                            "--only=2.1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "1 exercise stubbed" in again.stdout, again.stderr
    assert "raise NotImplementedError" in (student / "nanorm" / "sft.py").read_text()
    assert "raise NotImplementedError" not in (student / "nanorm" / "model.py").read_text()


# -----------------------------------------------------------------------------
# the grader (nanorm/course/grade.py), on copies made by the course tool

def test_grader_costs_one_broken_exercise_exactly_that_exercise(tmp_path):
    import json
    exercises = [ex.label for ex in assignments.all_exercises()]
    subs = tmp_path / "submissions"
    assignments.make_student_copy(subs / "reference", only=set())      # every exercise solved
    assignments.make_student_copy(subs / "fresh")                      # none
    for label in exercises:                                            # all but one
        assignments.make_student_copy(subs / f"broken_{label}", only={label})
    # editing the tests, or removing a region's markers, gains nothing: the grader runs its own tests
    tampered = subs / "tampered"
    assignments.make_student_copy(tampered, only={"2.1"})
    (tampered / "tests" / "test_sft_loss.py").write_text("def test_nothing():\n    pass\n")
    reward = tampered / "nanorm" / "reward.py"
    reward.write_text(reward.read_text().replace("# BEGIN SOLUTION lesson 3, exercise 3", "# solution 3.3"))
    graded = subprocess.run([sys.executable, "-m", "nanorm.course", f"--grade={subs}",
                             f"--grade_out={tmp_path}/grades.json"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert graded.returncode == 0, graded.stderr[-3000:]
    grades = json.load(open(tmp_path / "grades.json"))
    assert grades["exercises"] == exercises and grades["max_points"] == len(exercises)
    points = {name: {label: e["points"] for label, e in s["exercises"].items()}
              for name, s in grades["students"].items()}
    assert points["reference"] == dict.fromkeys(exercises, 1)
    assert points["fresh"] == dict.fromkeys(exercises, 0)
    for label in exercises:
        assert points[f"broken_{label}"] == {**dict.fromkeys(exercises, 1), label: 0}, label
    assert points["tampered"] == {**dict.fromkeys(exercises, 1), "2.1": 0, "3.3": 0}
    why = grades["students"]["tampered"]["exercises"]
    assert "lesson 2, exercise 1" in why["2.1"]["why"] and "no region labelled" in why["3.3"]["why"]
    assert grades["students"]["reference"]["total"] == len(exercises)
    assert "total" in graded.stdout and f"{len(exercises)}/{len(exercises)}" in graded.stdout
