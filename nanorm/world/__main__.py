"""`python -m nanorm.world`: the world's report."""

from nanorm.world import _report

_report()
