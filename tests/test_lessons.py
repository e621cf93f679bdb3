"""The lessons stay true to the code: every `file.py::Symbol` they cite exists, every relative link
resolves, and every "exercise N.M" they mention is a solution region of the code. And every written
(ungraded) exercise has a model answer in nanorm/course/answers.md, the instructor's file."""

import ast
import glob
import os
import re

import pytest

from nanorm.course.assignments import STAMP, all_exercises

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSONS = os.path.join(ROOT, "lessons")
CITATION = re.compile(r"`([\w./-]+\.py)::([A-Za-z_][\w.]*)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
EXERCISE = re.compile(r"\bexercises? (\d+\.\d+)\b")
ANSWERS = os.path.join(ROOT, "nanorm", "course", "answers.md")
ITEM = re.compile(r"^(\d+)\. (.*)")                     # a numbered exercise of a lesson's "## Exercises"
ANSWER = re.compile(r"^### (\d{2})\.(\d+)$")            # an answer's heading in answers.md: "### 03.4"


def lesson_files():
    return sorted(os.path.join(LESSONS, f) for f in os.listdir(LESSONS) if f.endswith(".md"))


def citations():
    for path in lesson_files():
        with open(path, encoding="utf-8") as f:
            for file, symbol in CITATION.findall(f.read()):
                yield os.path.basename(path), file, symbol


def _assigned_names(node):
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    for t in targets:
        for sub in ast.walk(t):
            if isinstance(sub, ast.Name):
                yield sub.id


def symbols(path):
    """Names defined at the top level of a module, and Class.member for what a class body defines."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        names.add(f"{node.name}.{sub.name}")
                    elif isinstance(sub, (ast.Assign, ast.AnnAssign)):
                        names.update(f"{node.name}.{n}" for n in _assigned_names(sub))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            names.update(_assigned_names(node))
    return names


def test_there_are_lessons_with_citations():
    assert len(lesson_files()) >= 4 and len(list(citations())) >= 20


CORE_WORDS = 1500   # the course issue: each lesson's core readable in one sitting


def lesson_core(text):
    """A lesson's core: everything before its exercises (the lab notes come after them)."""
    return text.split("\n## Exercises")[0]


def test_each_lesson_core_reads_in_one_sitting():
    numbered = [f for f in lesson_files() if re.match(r"\d\d-", os.path.basename(f))]
    assert len(numbered) == 9
    for path in numbered:
        text = open(path, encoding="utf-8").read()
        words = len(lesson_core(text).split())
        assert words <= CORE_WORDS, f"{os.path.basename(path)}: core of {words} words (move deep dives to lab notes)"
        notes = text.split("\n## Lab notes")
        assert len(notes) <= 2 and (len(notes) == 1 or "\n## Exercises" in notes[0]), \
            f"{os.path.basename(path)}: the lab notes come once, after the exercises"


def test_every_cited_symbol_exists():
    missing, cache = [], {}
    for lesson, file, symbol in citations():
        path = os.path.join(ROOT, file)
        if not os.path.isfile(path):
            missing.append(f"{lesson}: {file} does not exist")
            continue
        if file not in cache:
            cache[file] = symbols(path)
        if symbol not in cache[file]:
            missing.append(f"{lesson}: {file}::{symbol} is not defined there")
    assert not missing, "\n".join(missing)


def test_every_relative_link_resolves():
    broken = []
    for path in lesson_files():
        with open(path, encoding="utf-8") as f:
            for target in LINK.findall(f.read()):
                if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                    continue                                   # http(s):, mailto:, in-page anchors
                file = target.split("#", 1)[0]
                if not os.path.exists(os.path.join(os.path.dirname(path), file)):
                    broken.append(f"{os.path.basename(path)}: {target}")
    assert not broken, "\n".join(broken)


def test_every_exercise_mentioned_is_a_solution_region():
    labels = {ex.label for ex in all_exercises()}
    unknown = []
    for path in lesson_files():
        with open(path, encoding="utf-8") as f:
            unknown += [f"{os.path.basename(path)}: exercise {l}" for l in EXERCISE.findall(f.read())
                        if l not in labels]
    assert not unknown, "\n".join(unknown)


def exercise_items():
    """{"NN.M": the first line of its text} for the numbered items of every lessons/0*.md "## Exercises"
    section (from the heading to the next "## " heading)."""
    items = {}
    for path in sorted(glob.glob(os.path.join(LESSONS, "0*.md"))):
        lesson, in_section = os.path.basename(path)[:2], False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("## "):
                    in_section = line.strip() == "## Exercises"
                elif in_section and (m := ITEM.match(line)):
                    items[f"{lesson}.{m[1]}"] = m[2]
    return items


def test_every_written_exercise_has_a_model_answer():
    if os.path.isfile(os.path.join(ROOT, STAMP)):
        pytest.skip("a student copy: nanorm/course/answers.md is left out of it")
    items = exercise_items()
    written = {label for label, text in items.items() if not text.startswith("**(graded")}
    assert len(items) >= 20 and len(written) >= 10                     # the sections were found and read
    with open(ANSWERS, encoding="utf-8") as f:
        headings = [line.rstrip("\n") for line in f if line.startswith("### ")]
    problems = [f"answers.md: heading {h!r} is not of the form '### NN.M'" for h in headings if not ANSWER.match(h)]
    answered = [".".join(ANSWER.match(h).groups()) for h in headings if ANSWER.match(h)]
    twice = sorted({label for label in answered if answered.count(label) > 1})
    problems += [f"answers.md: {label} is answered twice" for label in twice]
    problems += [f"exercise {label} has no answer in answers.md" for label in sorted(written - set(answered))]
    problems += [f"answers.md: {label} is {'graded' if label in items else 'not an exercise of the lessons'}"
                 for label in sorted(set(answered) - written)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("text,expected", [
    ("see `nanorm/model.py::GPT.generate` and `train_sft.py::SFTConfig`", [("nanorm/model.py", "GPT.generate"),
                                                                          ("train_sft.py", "SFTConfig")]),
    ("`x.py` alone, `x.py::` and ``nanorm/model.py::Trunk``", [("nanorm/model.py", "Trunk")]),
])
def test_citation_pattern(text, expected):
    assert CITATION.findall(text) == expected


def test_symbol_table_on_a_script():
    names = symbols(os.path.join(ROOT, "train_sft.py"))
    assert {"SFTConfig", "SFTConfig.max_iters", "make_examples", "get_batch", "main"} <= names
    assert "GPT" not in names                                   # imported, not defined here
    assert not {"cfg", "model", "optimizer"} & names            # local to main: a lesson cites `train_sft.py::main`
