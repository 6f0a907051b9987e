"""Run reports: the artifact tables, `report.md` and a self-contained `report.html`.

    import edgekeras as ek
    rep = ek.report("runs/digits")      # = write_report: writes runs/digits/report.md and report.html
    print(rep.html, rep.rows[0]["accuracy"])

Modules: `run_folder` (what is reported on), `summary` (a manifest as report fields),
`table` (terminal/Markdown/report tables), `plots` (trade-off plots, Pareto front),
`markdown` and `html` (renderers), `writer` (`write_report`). None imports TensorFlow.
"""

from edgekeras.reporting.table import COLUMNS, artifact_rows, markdown_table, text_table
from edgekeras.reporting.writer import Report, write_report
from edgekeras.run_folder import find_artifacts

__all__ = ["COLUMNS", "Report", "artifact_rows", "find_artifacts", "markdown_table", "text_table", "write_report"]
