"""
The course, as a tool apart from what it teaches: the graded exercises and the student copy.

    python -m nanorm.course --out=student     # a copy of the repo with every exercise stubbed
    python -m nanorm.course --audit=true      # do the tests' exercise markers match what they run?

nanorm/course/assignments.py  the solution regions, the tests that grade them, the student copy
nanorm/course/audit.py        the line tracer behind --audit
nanorm/course/__main__.py     the command line

Nothing in nanorm's teaching modules imports this package.
"""
