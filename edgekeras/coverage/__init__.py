"""The coverage table: which Keras layer families convert to which format and precision.

`families.py` lists the families (a small model and its inputs each), `cell.py` converts and
classifies one family's cells (in a child process), `matrix.py` runs every family and
collects the results (watching each child's memory with `memory.py`), `table.py` renders
`docs/coverage.md` from `docs/coverage.json`. `coverage()` below is the whole command as a
function; nothing here imports TensorFlow.

The keras.applications table (`edgekeras coverage --applications`, `docs/applications.md`)
reuses all of it: `applications.py` turns each architecture Keras ships into a Family,
`applications_run.py` runs and caches the rows, `applications_table.py` renders them.
"""

from __future__ import annotations

from edgekeras.coverage.matrix import merge, regressions, run_matrix, select
from edgekeras.coverage.table import check_replaceable, json_path, load_document, write

DEFAULT_OUT = "docs/coverage.md"


def coverage(out=DEFAULT_OUT, families=None, formats=None, precisions=None, update=False, force=False, progress=True):
    """Runs the chosen cells (default: every family × every exporter) and writes `out` (markdown)
    and the JSON beside it. `update` merges the cells run into the existing JSON instead of
    replacing the table.

    Returns (document, regressions): the document written, and the cells that passed in the
    table `out` held before and do not pass now.
    """
    chosen, pairs = select(families, formats, precisions)
    if out is not None:
        check_replaceable(out, force)
    previous = load_document(json_path(out)) if out is not None else None
    document = run_matrix(chosen, pairs, progress=progress)
    if update and previous is not None:
        document = merge(previous, document)
    if out is not None:
        write(document, out)
    return document, regressions(previous, document)
