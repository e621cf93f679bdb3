"""
The course tool: make a student copy of nanorm with the graded code taken out.

    python -m nanorm.course --out=student                # copy the repo, stub every exercise
    python -m nanorm.course --out=student --force=true   # replace an earlier student copy
    python -m nanorm.course --out=/tmp/x --only=2.1      # stub one exercise (to check its tests)
    python -m nanorm.course --audit=true                 # check the test markers against what tests run
    python -m nanorm.course --grade=submissions          # score student copies, each exercise in isolation

The regions, the student copy and which tests grade what: nanorm/course/assignments.py. The audit:
nanorm/course/audit.py. The grader: nanorm/course/grade.py.
"""

import os
import sys
from dataclasses import dataclass

from nanorm.config import parse_config
from nanorm.course.assignments import ROOT, RegionError, graded_tests, make_student_copy
from nanorm.course.audit import report_audit
from nanorm.course.grade import report_grades


@dataclass
class CourseConfig:
    out: str = ""          # directory to write the student copy to (required)
    force: bool = False    # replace an existing student copy at --out (only one this tool made)
    only: str = ""         # comma-separated labels to stub, e.g. "1.1,2.1"; empty = every exercise
    audit: bool = False    # instead of copying: run the tests here and check their exercise markers
    grade: str = ""        # instead of copying: grade this student copy, or every copy in this folder
    grade_out: str = ""    # where the grades go (JSON); empty = GRADE/grades.json
    grade_timeout: int = 60   # seconds a grading test may run before it fails

    def check(self):
        if not self.out and not self.audit and not self.grade:
            raise SystemExit("error: --out=DIR is required (where to write the student copy)")


def main(argv):
    cfg = parse_config(CourseConfig, argv)
    if cfg.audit:
        return report_audit(ROOT)
    if cfg.grade:
        return report_grades(cfg.grade, cfg.grade_out, cfg.grade_timeout)
    only = {s.strip() for s in cfg.only.split(",") if s.strip()} or None
    try:
        stubbed = make_student_copy(cfg.out, ROOT, cfg.force, only)
    except RegionError as e:
        raise SystemExit(f"error: {e}") from None
    graded = graded_tests(ROOT)
    n = len(stubbed)
    print(f"student copy written to {os.path.abspath(cfg.out)}: {n} exercise{'s' * (n != 1)} stubbed\n")
    print(f"{'exercise':<9} {'where':<48} graded by")
    for ex in stubbed:
        tests = graded.get(ex.label, [])
        print(f"{ex.label:<9} {ex.path + '::' + ex.symbol:<48} {len(tests)} tests  ({ex.what})")
        for t in tests:
            print(f"{'':<10}{t}")
    untested = [ex.label for ex in stubbed if not graded.get(ex.label)]
    if untested:
        print(f"\nwarning: no test grades exercise {', '.join(untested)}")
    print(f"\nnext: cd {cfg.out} && python -m pytest -q tests --exercise=1.1   "
          f"(the tests of one exercise; --exercise=3 for a whole lesson)")
    print("      python -m pytest -q tests -m exercise   (every graded test; all pass once every exercise is done)")


if __name__ == "__main__":
    main(sys.argv[1:])
