"""Keep hidden tests hidden in the feedback students get (nbgrader issue #917).

nbgrader's feedback is the autograded notebook as HTML: every test cell with its hidden tests,
and the tracebacks of the hidden assertions that failed, whose code context shows hidden lines
(IPython prints a few lines around the failing one, so even a *visible* failure shows the first
hidden lines after it). :func:`redact_cell` rewrites one graded cell for feedback:

- each ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` block of the source becomes one
  comment that says whether the hidden tests passed, failed, or were not reached;
- an error raised by a hidden line becomes a short message that names the cell, keeping only
  the frames of the student's own cells (no test code, no hidden values from the message);
- an error raised by a visible line keeps its teaching message and traceback, minus the code
  lines of hidden tests in the traceback's context.

The preprocessor :class:`autograde.preprocessors.HideHiddenTests` applies it when
``nbgrader generate_feedback`` runs (registered in nbgrader_config.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nbformat.notebooknode import NotebookNode

BEGIN = "BEGIN HIDDEN TESTS"
END = "END HIDDEN TESTS"

ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: "Cell In[12], line 5" (IPython >= 8), "<ipython-input-12-...> in <module>" (older)
FRAME = re.compile(r"Cell In\[(\d+)\], line (\d+)|<ipython-input-(\d+)-")
#: a code context line of a traceback: "----> 5 code" or "      6 code"
CONTEXT = re.compile(r"^\s*(?:-*>)?\s*(\d+)(?: (.*))?$")

NOTE = {
    "passed": "hidden tests: not shown (they passed)",
    "failed": "hidden tests: not shown (one of them failed, see the message below)",
    "not reached": "hidden tests: not shown (not run: a visible test above failed first)",
    "unknown": "hidden tests: not shown",
}

HIDDEN_FAILURE = (
    "A hidden test of {cell} failed.\n"
    "Hidden tests check what the visible ones do not: other inputs, edge cases, shapes,\n"
    "dtypes, gradients. Re-read the exercise statement and try your code on inputs of your own."
)
#: an error that no line of the cell raised (a time-out, a dead kernel)
CELL_FAILURE = "The test cell {cell} failed; its hidden tests are not shown."


@dataclass(frozen=True)
class Block:
    """Lines ``first`` .. ``last`` (1-based, markers included) of a hidden block."""

    first: int
    last: int

    def __contains__(self, line: int) -> bool:
        return self.first <= line <= self.last


def hidden_blocks(source: str, begin: str = BEGIN, end: str = END) -> list[Block]:
    """The hidden blocks of a cell's source; an unterminated block runs to the end."""
    blocks, start = [], None
    lines = source.split("\n")
    for number, line in enumerate(lines, start=1):
        if begin in line and start is None:
            start = number
        elif end in line and start is not None:
            blocks.append(Block(start, number))
            start = None
    if start is not None:
        blocks.append(Block(start, len(lines)))
    return blocks


def split_lines(nb: NotebookNode, begin: str = BEGIN,
                end: str = END) -> tuple[set[str], set[str]]:
    """(stripped lines inside hidden blocks, stripped lines outside them) of every cell."""
    hidden, public = set(), set()
    for cell in nb.cells:
        blocks = hidden_blocks(cell.source, begin, end)
        for number, line in enumerate(cell.source.split("\n"), start=1):
            (hidden if any(number in b for b in blocks) else public).add(line.strip())
    return hidden, public


def _plain(text: str) -> str:
    return ANSI.sub("", text)


def _failing_line(outputs: list, count: int | None) -> tuple[int | None, NotebookNode | None]:
    """The cell's own line that raised its error (outermost frame of the cell), and the error."""
    for out in outputs:
        if out.get("output_type") != "error":
            continue
        for entry in out.get("traceback", []):
            for match in FRAME.finditer(_plain(entry)):
                cell_count = match.group(1) or match.group(3)
                if count is None or int(cell_count) == count:
                    return (int(match.group(2)) if match.group(2) else None), out
        return None, out
    return None, None


def _clean_traceback(entries: list[str], count: int | None, blocks: list[Block],
                     secret: set[str], keep_own_frames: bool) -> list[str]:
    """Traceback entries without hidden code: context lines of the cell's hidden blocks and
    any line whose code is a hidden-only line are dropped. ``keep_own_frames=False`` also
    drops the cell's own frames and library frames (only the student's cells remain)."""
    cleaned = []
    for entry in entries:
        lines = entry.split("\n")
        header = FRAME.search(_plain(lines[0]))
        own = bool(header) and (count is None or int(header.group(1) or header.group(3)) == count)
        if not keep_own_frames and (own or not header):
            continue
        kept, skipping = [], False
        for line in lines:
            plain = _plain(line)
            context = CONTEXT.match(plain) if plain.strip() else None
            code = (context.group(2) or "") if context else plain
            hide = code.strip() in secret or (
                own and context is not None and any(int(context.group(1)) in b for b in blocks))
            if hide:
                if not skipping:
                    kept.append("      ... (hidden tests not shown)")
                skipping = True
            else:
                kept.append(line)
                skipping = False
        cleaned.append("\n".join(kept))
    return cleaned


def redact_cell(cell: NotebookNode, secret: set[str], begin: str = BEGIN,
                end: str = END) -> bool:
    """Remove the hidden tests of one cell, in place, for feedback. True if it had any.

    ``secret``: stripped hidden-only lines of the whole notebook, dropped from tracebacks
    wherever they appear (a safety net behind the line numbers).
    """
    blocks = hidden_blocks(cell.source, begin, end)
    outputs = cell.get("outputs", [])
    if not blocks:
        if outputs and secret:
            for out in outputs:
                if out.get("output_type") == "error":
                    out.traceback = _clean_traceback(out.traceback, None, [], secret, True)
        return False
    count = cell.get("execution_count")
    line, error = _failing_line(outputs, count)
    name = cell.metadata.get("nbgrader", {}).get("grade_id") or "this cell"
    from_hidden = error is not None and (line is None or any(line in b for b in blocks))

    lines = cell.source.split("\n")
    new: list[str] = []
    for number, text in enumerate(lines, start=1):
        block = next((b for b in blocks if number in b), None)
        if block is None:
            new.append(text)
        elif number == block.first:
            if error is None:
                state = "passed"
            elif line is None:
                state = "unknown"
            elif line in block:
                state = "failed"
            else:
                state = "not reached" if line < block.first else "passed"
            indent = text[: len(text) - len(text.lstrip())]
            new.append(f"{indent}# {NOTE[state]}")
    cell.source = "\n".join(new)

    for out in outputs:
        if out.get("output_type") != "error":
            continue
        if out is error and from_hidden:
            message = (HIDDEN_FAILURE if line is not None else CELL_FAILURE).format(cell=name)
            student = _clean_traceback(out.traceback, count, blocks, secret, False)
            out.evalue = f"a hidden test of {name} failed"
            out.traceback = [f"\x1b[31m{out.get('ename') or 'Error'}\x1b[39m: {message}"]
            if student:
                out.traceback += ["\nRaised in your code:", *student]
        else:
            out.traceback = _clean_traceback(out.traceback, count, blocks, secret, True)
    return True


def redact_notebook(nb: NotebookNode, begin: str = BEGIN, end: str = END) -> int:
    """Redact every cell of a notebook for feedback; the number of cells with hidden tests."""
    hidden, public = split_lines(nb, begin, end)
    secret = {line for line in hidden - public if line}
    return sum(redact_cell(cell, secret, begin, end) for cell in nb.cells)
