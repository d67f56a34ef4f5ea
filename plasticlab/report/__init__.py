"""Reports for a run or a sweep: summary.csv, mean ± 95% CI tables, PNG plots, report.md/html."""

from plasticlab.report.make import make_report

__all__ = ["make_report"]
