"""
Exercises: the labelled solution regions of the code, the tests that grade them, and the student copy.

The code marks each graded region with two comment lines:

    <indent># BEGIN SOLUTION lesson N, exercise M: short description
    ...the reference solution...
    <indent># END SOLUTION

Exercise "N.M" belongs to lessons/NN-*.md. In the student copy, the solution lines are replaced by one
line at the region's indentation,

    raise NotImplementedError("lesson N, exercise M: short description")

Comment lines that open a region (before its first line of code) are kept as a hint; the marker lines
stay, so the student sees where to write. Every region must carry a label, labels are unique, and the
stubbed file must still parse: this module stops with a one-line error otherwise.

Which tests grade an exercise. A test is marked `@pytest.mark.exercise("N.M", ...)` with EVERY exercise
whose code it runs, directly or through a script (the rule for end-to-end tests: the smoke runs of
train_sft.py etc. carry the label of every region the script executes). So in the student copy a test
fails exactly when it is marked, and with every exercise solved the whole suite passes again. Markers
may sit on a test function, on a test class, or in a module's `pytestmark`; tests/conftest.py adds
`--exercise=N.M` (or `--exercise=N` for a whole lesson) to run only the tests that grade it.
tests/test_assignments.py checks the rule on a fresh student copy; nanorm/course/audit.py checks it
per exercise, by tracing which tests run which region.

The copy holds what git would commit (tracked files plus untracked, non-ignored ones; a plain walk of
the tree that skips out/, .git and caches where git is missing), minus tests/test_assignments.py, the
maintainers' check of the copy itself, minus nanorm/course/answers.md, the model answers to the written
exercises, and minus tests/hidden/: the tests whose naive reference (a pair
loop, a scalar GAE loop) is itself a solution. They stay with the instructor, whose grader runs them
(nanorm/course/grade.py); the student copy keeps the tests with hand-worked values. Nothing is written outside --out.
"""

import ast
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAMP = ".nanorm-student"                      # written into every student copy; --force only replaces those
LEFT_OUT = {"tests/test_assignments.py", "nanorm/course/answers.md"}   # not copied (see the docstring)
HIDDEN = "tests/hidden/"                       # the instructor's tests that hold a reference solution: not copied
SKIP_DIRS = {".git", "out", "student", "__pycache__", ".pytest_cache", ".benchmarks"}   # the walk without git

BEGIN_RE = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION\b(?P<rest>.*)$")
END_RE = re.compile(r"^(?P<indent>[ \t]*)# END SOLUTION\s*$")
LABEL_RE = re.compile(r"^ lesson (?P<lesson>\d+), exercise (?P<number>\d+): (?P<what>\S.*?)\s*$")


@dataclass
class Exercise:
    lesson: int
    number: int
    what: str      # the short description from the marker
    path: str      # file, relative to the repo root
    symbol: str    # enclosing function or Class.method
    begin: int     # 1-based line of the BEGIN marker
    end: int       # 1-based line of the END marker

    @property
    def label(self):
        return f"{self.lesson}.{self.number}"

    @property
    def message(self):
        return f"lesson {self.lesson}, exercise {self.number}: {self.what}"


class RegionError(ValueError):
    pass


# ----------------------------------------------------------------------------------------------------
# finding and stubbing the regions of one file


def _symbol_at(tree, line):
    """Qualified name of the top-level function, class or method that contains `line`."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
                node.lineno <= line <= node.end_lineno:
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                            sub.lineno <= line <= sub.end_lineno:
                        return f"{node.name}.{sub.name}"
            return node.name
    return "<module>"


def find_exercises(text, path):
    """The labelled solution regions of one Python source, in file order."""
    lines = text.splitlines()
    found, open_at = [], None
    for i, line in enumerate(lines, 1):
        if m := BEGIN_RE.match(line):
            if open_at is not None:
                raise RegionError(f"{path}:{i}: BEGIN SOLUTION inside the region opened at line {open_at[0]}")
            label = LABEL_RE.match(m["rest"])
            if label is None:
                raise RegionError(f"{path}:{i}: expected '# BEGIN SOLUTION lesson N, exercise M: description'")
            open_at = (i, m["indent"], label)
        elif m := END_RE.match(line):
            if open_at is None:
                raise RegionError(f"{path}:{i}: END SOLUTION without a BEGIN SOLUTION")
            begin, indent, label = open_at
            if m["indent"] != indent:
                raise RegionError(f"{path}:{i}: END SOLUTION is not indented like its BEGIN (line {begin})")
            if not any(l.strip() and not l.strip().startswith("#") for l in lines[begin:i - 1]):
                raise RegionError(f"{path}:{begin}: solution region without code")
            found.append(Exercise(int(label["lesson"]), int(label["number"]), label["what"], path,
                                  "", begin, i))
            open_at = None
    if open_at is not None:
        raise RegionError(f"{path}:{open_at[0]}: BEGIN SOLUTION never ends")
    if found:
        tree = ast.parse(text, filename=path)
        for ex in found:
            ex.symbol = _symbol_at(tree, ex.begin)
    return found


def stub_source(text, path, only=None):
    """Replace the body of every region (or of those labelled in `only`) by `raise NotImplementedError`.

    Returns (new text, [Exercise stubbed]). The result must parse as Python.
    """
    exercises = [ex for ex in find_exercises(text, path) if only is None or ex.label in only]
    if not exercises:
        return text, []
    lines = text.splitlines(keepends=True)
    for ex in reversed(exercises):   # from the bottom up, so earlier line numbers stay valid
        body = lines[ex.begin:ex.end - 1]
        hint = []
        for line in body:             # leading comment lines stay as a hint
            if not line.strip().startswith("#"):
                break
            hint.append(line)
        indent = BEGIN_RE.match(lines[ex.begin - 1])["indent"]
        stub = f"{indent}raise NotImplementedError({ex.message!r})\n"
        lines[ex.begin:ex.end - 1] = hint + [stub]
    new = "".join(lines)
    try:
        ast.parse(new, filename=path)
    except SyntaxError as e:
        raise RegionError(f"{path}:{e.lineno}: the stubbed file is not valid Python: {e.msg}") from None
    return new, exercises


# ----------------------------------------------------------------------------------------------------
# the repository: its files, its exercises and the tests that grade them


def repo_files(root=ROOT):
    """Relative paths of the files to copy: what git would commit, or a filtered walk without git."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True).stdout.decode()
        paths = [p for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
            for name in sorted(filenames):
                if not name.endswith((".pyc", ".tmp")):
                    paths.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    # a tracked file deleted from the working tree is not copied; neither is a link to outside the repo
    return sorted(p for p in set(paths) if os.path.isfile(os.path.join(root, p)))


def all_exercises(root=ROOT, files=None):
    """Every exercise in the repo's Python files, sorted by label; duplicate labels are an error."""
    exercises = []
    for rel in files if files is not None else repo_files(root):
        if rel.endswith(".py"):
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                exercises += find_exercises(f.read(), rel)
    seen = {}
    for ex in exercises:
        if ex.label in seen:
            raise RegionError(f"exercise {ex.label} is labelled twice: {seen[ex.label]}:{ex.begin} "
                              f"and {ex.path}:{ex.begin}")
        seen[ex.label] = ex.path
    return sorted(exercises, key=lambda ex: (ex.lesson, ex.number))


def _exercise_marks(decorators, named=None):
    """Labels of the `pytest.mark.exercise(...)` calls among decorator/mark expressions; named: {name:
    labels} of the module's marks kept in a variable (`CHAIN = pytest.mark.exercise(...)`, then `@CHAIN`)."""
    labels = []
    for node in decorators:
        if isinstance(node, ast.Name) and named and node.id in named:
            labels += named[node.id]
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == "exercise":
                labels += [a.value for a in sub.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return labels


def test_files(root=ROOT):
    """tests/test_*.py and tests/hidden/test_*.py, relative to root, sorted."""
    found = []
    for folder in ("tests", HIDDEN.rstrip("/")):
        if os.path.isdir(os.path.join(root, folder)):
            found += [f"{folder}/{name}" for name in sorted(os.listdir(os.path.join(root, folder)))
                      if name.startswith("test_") and name.endswith(".py")]
    return found


def graded_tests(root=ROOT):
    """{label: [test id, ...]}, read statically from test_files (parametrized cases share one id)."""
    graded = {}
    for name in test_files(root):
        with open(os.path.join(root, name), encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=name)
        module_labels, named = [], {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                    for t in node.targets):
                module_labels += _exercise_marks([node.value])
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                named[node.targets[0].id] = _exercise_marks([node.value])

        def visit(body, prefix, inherited):
            for node in body:
                if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                    visit(node.body, f"{prefix}{node.name}::", inherited + _exercise_marks(node.decorator_list, named))
                elif isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                    for label in dict.fromkeys(inherited + _exercise_marks(node.decorator_list, named)):
                        graded.setdefault(label, []).append(f"{name}::{prefix}{node.name}")

        visit(tree.body, "", module_labels)
    return graded


# ----------------------------------------------------------------------------------------------------
# writing the student copy


def _inside(path, parent):
    path, parent = os.path.realpath(path), os.path.realpath(parent)
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def make_student_copy(out, root=ROOT, force=False, only=None):
    """Write the student copy to `out`; returns the exercises stubbed."""
    out = os.path.abspath(out)
    files = [p for p in repo_files(root) if p not in LEFT_OUT and not p.startswith(HIDDEN)]
    if _inside(root, out):
        raise SystemExit(f"error: --out={out} is the repository or contains it; choose another directory")
    inside = [p for p in files if _inside(os.path.join(root, p), out)]
    if inside and not os.path.isfile(os.path.join(out, STAMP)):    # an earlier copy in the tree is not source
        raise SystemExit(f"error: --out={out} holds the repository's own files ({inside[0]}); "
                         f"choose another directory")
    files = [p for p in files if p not in inside]
    exercises = all_exercises(root, files)
    if only is not None:
        unknown = sorted(set(only) - {ex.label for ex in exercises})
        if unknown:
            raise SystemExit(f"error: --only: no exercise {', '.join(unknown)}; "
                             f"known: {', '.join(ex.label for ex in exercises)}")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        if not force:
            raise SystemExit(f"error: {out} exists and is not empty; pass --force=true to replace it")
        if not os.path.isfile(os.path.join(out, STAMP)):
            raise SystemExit(f"error: {out} is not a student copy made by this tool; "
                             f"--force only replaces those. Remove it yourself or pick another --out")
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    stubbed = []
    for rel in files:
        src, dst = os.path.join(root, rel), os.path.join(out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if rel.endswith(".py"):
            with open(src, encoding="utf-8") as f:
                text, done = stub_source(f.read(), rel, only)
            with open(dst, "w", encoding="utf-8") as f:
                f.write(text)
            shutil.copymode(src, dst)
            stubbed += done
        else:
            shutil.copy2(src, dst)
    with open(os.path.join(out, STAMP), "w") as f:
        json.dump({"source": root, "stubbed": [ex.label for ex in stubbed]}, f, indent=1)
    return sorted(stubbed, key=lambda ex: (ex.lesson, ex.number))
