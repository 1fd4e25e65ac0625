"""Run the demo notebook headless and print what a person would see in its outputs.

``bash scripts/up.sh`` ends with this: it executes ``demo/peaks.ipynb`` in a real
kernel (so the real magics build, test and push on the real engine and registry)
and prints each cell with its plain-text output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

DEMO = Path(__file__).resolve().parent.parent / "demo" / "peaks.ipynb"


def output_text(outputs) -> str:
    """The plain text of a cell's outputs: streams, text/plain of results and displays, errors."""
    parts = []
    for output in outputs:
        if output.output_type == "stream":
            parts.append(output.text.rstrip())
        elif output.output_type in ("display_data", "execute_result"):
            parts.append(output.data.get("text/plain", "").rstrip())
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
    return "\n".join(p for p in parts if p)


def cell_text(cell) -> str:
    """The source and the plain-text outputs of one executed cell."""
    source = "\n".join(f">>> {line}" for line in cell.source.splitlines())
    return "\n".join(p for p in (source, output_text(cell.get("outputs", []))) if p)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", nargs="?", default=str(DEMO), help="notebook to run")
    args = parser.parse_args(argv)
    path = Path(args.notebook)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=900, resources={"metadata": {"path": str(path.parent)}}
    )
    try:
        client.execute()
        ok = True
    except CellExecutionError:
        ok = False
    for cell in notebook.cells:
        if cell.cell_type == "code":
            print(cell_text(cell), end="\n\n")
    nbformat.write(notebook, path.with_suffix(".out.ipynb"))
    print(
        f"demo: {'done' if ok else 'FAILED'}; executed notebook: {path.with_suffix('.out.ipynb')}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
