"""Where the measurement tools write what they measured: a JSON record
and the Markdown report made from it, side by side.

A shared module of tools/analysis_tools (no ``__main__``): the scripts
import it by name.
"""
from __future__ import annotations

import json
import os.path as osp
from collections.abc import Callable


def write_record_and_report(record: dict, out: str,
                            format_report: Callable[[dict, str], str]
                            ) -> tuple[str, str]:
    """Write ``record`` to ``out`` and its report to ``<out stem>.md``.

    Args:
        record (dict): What was measured (JSON-serialisable).
        out (str): The JSON file.
        format_report (Callable): ``(record, JSON file name) -> Markdown``;
            the report links the JSON beside it by that name.

    Returns:
        tuple[str, str]: The report's path and its text.
    """
    report = osp.splitext(out)[0] + '.md'
    with open(out, 'w') as f:
        json.dump(record, f, indent=1)
    text = format_report(record, osp.basename(out))
    with open(report, 'w') as f:
        f.write(text)
    return report, text
