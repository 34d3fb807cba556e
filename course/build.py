"""Build the classroom notebooks from their sources: an exercise and a solution version of each.

    python course/build.py           # write course/NN-*.ipynb and course/solutions/NN-*.ipynb
    python course/build.py --check   # exit 1 when a written notebook differs from its source

A source is `course/src/NN-name.py` in jupytext's percent format. A cell tagged `exercise`
goes into the exercise notebook only (its blanks are `____`), the cell tagged `solution`
right after it into the solution notebook only (the same code with every blank filled,
nothing else changed); every other cell goes into both. The cell
tagged `figures` prints the notebook's measured figures as JSON, which the test suite
checks (tests/test_course.py). Notebooks are written without outputs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat

COURSE = Path(__file__).resolve().parent
SOURCES = COURSE / "src"
SOLUTIONS = COURSE / "solutions"
BLANK = "____"   # four underscores: IPython keeps its third-last output in `___`
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def sources() -> list[Path]:
    """Return the notebook sources in lesson order."""
    return sorted(SOURCES.glob("[0-9][0-9]-*.py"))


def _version(nb: nbformat.NotebookNode, drop: str) -> nbformat.NotebookNode:
    out = nbformat.v4.new_notebook()
    out.metadata = {"kernelspec": dict(KERNEL), "language_info": {"name": "python"}}
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if drop in tags:
            continue
        meta = {"tags": list(tags)} if tags else {}
        if cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(cell.source, metadata=meta)
        else:
            new = nbformat.v4.new_code_cell(cell.source, metadata=meta)
        new.id = f"c{len(out.cells):02d}"        # stable ids: a rebuild changes nothing it need not
        out.cells.append(new)
    return out


def check_source(path: Path, nb: nbformat.NotebookNode) -> None:
    """Refuse a source whose exercise cells lack blanks or a solution cell right after them."""
    cells = nb.cells
    for i, cell in enumerate(cells):
        tags = cell.metadata.get("tags", [])
        if "exercise" in tags:
            if BLANK not in cell.source:
                raise SystemExit(f"{path}: cell {i}: an exercise cell without a {BLANK} blank")
            if i + 1 >= len(cells) or "solution" not in cells[i + 1].metadata.get("tags", []):
                raise SystemExit(f"{path}: cell {i}: an exercise cell must be followed by its solution cell")
            if not blanks_match(cell.source, cells[i + 1].source):
                raise SystemExit(f"{path}: cell {i}: the solution after it differs from the exercise "
                                 f"in more than its {BLANK} blanks")
        elif "solution" in tags:
            if i == 0 or "exercise" not in cells[i - 1].metadata.get("tags", []):
                raise SystemExit(f"{path}: cell {i}: a solution cell must follow its exercise cell")
            if BLANK in cell.source:
                raise SystemExit(f"{path}: cell {i}: a solution cell with a {BLANK} blank left in it")
    if not any("figures" in c.metadata.get("tags", []) for c in cells):
        raise SystemExit(f"{path}: no cell tagged figures")


def blanks_match(exercise: str, solution: str) -> bool:
    """Tell whether the solution is the exercise with each blank filled (within its line)."""
    pattern = re.escape(exercise).replace(re.escape(BLANK), r"([^\n]+?)")
    return re.fullmatch(pattern, solution) is not None


def build(path: Path) -> tuple[str, str]:
    """Return the exercise and the solution notebook of one source, as .ipynb text."""
    nb = jupytext.read(path, fmt="py:percent")
    check_source(path, nb)
    return (nbformat.writes(_version(nb, drop="solution")) + "\n",
            nbformat.writes(_version(nb, drop="exercise")) + "\n")


def targets(path: Path) -> tuple[Path, Path]:
    """Return where the exercise and the solution notebook of a source go."""
    name = path.with_suffix(".ipynb").name
    return COURSE / name, SOLUTIONS / name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a notebook is stale")
    args = parser.parse_args(argv)
    stale = []
    for src in sources():
        for text, target in zip(build(src), targets(src)):
            if target.is_file() and target.read_text() == text:
                continue
            stale.append(target)
            if not args.check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    for target in stale:
        print(f"{'stale' if args.check else 'wrote'} {target.relative_to(COURSE.parent)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
