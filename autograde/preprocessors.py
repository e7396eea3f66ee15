"""nbgrader preprocessors that close gaps of nbgrader's defaults (see nbgrader_config.py)."""

from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer, Unicode

#: The note that replaces output beyond the caps (the grading report looks for it).
TRUNCATION_NOTE = "[output truncated by the autograder: more than {limit} bytes]"


class EnforceGradedExecution(NbGraderPreprocessor):
    """Remove every tag from graded and solution cells before autograding executes them.

    Tags can make an executor skip a cell ("skip-execution", the course's skip tag) or tolerate
    its errors. Students can edit tags, and nbgrader restores a test cell's source but not its
    tags, so a tagged test cell would otherwise be skipped and score full marks.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        meta = cell.metadata.get("nbgrader", {})
        if (meta.get("grade") or meta.get("solution")) and cell.metadata.get("tags"):
            self.log.warning("Removed tags %s from graded cell %s", cell.metadata["tags"],
                             meta.get("grade_id"))
            cell.metadata["tags"] = []
        return cell, resources


class StripJupytextMetadata(NbGraderPreprocessor):
    """Drop the jupytext pairing of solution notebooks from released ones.

    Solution notebooks are paired with a percent script; a student's copy must not be, or
    saving it in JupyterLab would write a .py file next to it.
    """

    def preprocess(self, nb, resources):
        nb.metadata.pop("jupytext", None)
        return nb, resources


class LimitExecutionOutput(Execute):
    """nbgrader's Execute, keeping at most ``max_cell_bytes`` of output per cell and
    ``max_notebook_bytes`` per notebook while the notebook runs.

    A flood of output (``while True: print(...)``) would otherwise grow in memory and in the
    autograded notebook without bound (nbgrader's LimitOutput only cuts lines afterwards).
    Beyond the caps, stream text is cut and rich output dropped, with one note per cell; what
    decides a grade is kept: every error, some of every stderr stream, execute results.
    """

    max_cell_bytes = Integer(1_000_000, help="output bytes kept per cell").tag(config=True)
    max_notebook_bytes = Integer(16_000_000, help="output bytes kept per notebook").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._cell_bytes: dict[int, int] = {}
        self._notebook_bytes = 0
        self._noted: set[int] = set()
        return super().preprocess(nb, resources, km)

    def clear_output(self, outs, msg, cell_index):
        self._cell_bytes[cell_index] = 0
        return super().clear_output(outs, msg, cell_index)

    def output(self, outs, msg, display_id, cell_index):
        out = super().output(outs, msg, display_id, cell_index)
        if out is None:
            return out
        room = min(self.max_cell_bytes - self._cell_bytes.get(cell_index, 0),
                   self.max_notebook_bytes - self._notebook_bytes)
        size = _output_size(out)
        if size > room:
            self._shrink(outs, out, max(room, 0), display_id)
            if cell_index not in self._noted:
                self._noted.add(cell_index)
                limit = min(self.max_cell_bytes, self.max_notebook_bytes)
                outs.append(new_output("stream", name="stdout",
                                       text="\n" + TRUNCATION_NOTE.format(limit=limit) + "\n"))
            size = _output_size(out)
        self._cell_bytes[cell_index] = self._cell_bytes.get(cell_index, 0) + size
        self._notebook_bytes += size
        return out

    @staticmethod
    def _shrink(outs, out, room: int, display_id) -> None:
        kind = out.output_type
        if kind == "stream":  # keep a little stderr: writing to stderr fails a test cell
            out.text = out.text[:max(room, 200 if out.name == "stderr" else 0)]
            if not out.text and outs and outs[-1] is out:
                outs.pop()
        elif kind == "error":
            out.evalue = out.evalue[:1000]
            out.traceback = [line[:1000] for line in out.traceback[-20:]]
        elif kind == "execute_result":  # may carry a partial-credit number: keep it, shortened
            out.data = {"text/plain": str(out.data.get("text/plain", ""))[:max(room, 100)]}
        elif display_id:  # its position is referenced by later display updates
            out.data = {}
        elif outs and outs[-1] is out:
            outs.pop()


def _output_size(out) -> int:
    kind = out.output_type
    if kind == "stream":
        return len(out.text)
    if kind == "error":
        return len(out.evalue) + sum(len(line) for line in out.traceback)
    return sum(len(str(value)) for value in out.get("data", {}).values())


class HideHiddenTests(NbGraderPreprocessor):
    """Feedback without hidden tests (nbgrader issue #917): registered for GenerateFeedback.

    Hidden blocks of test cells become one comment (passed / failed / not reached), errors
    raised by hidden lines a short message naming the cell, and tracebacks of visible
    failures lose the hidden lines of their code context. See :mod:`autograde.hidden`.
    """

    begin_test_delimeter = Unicode("BEGIN HIDDEN TESTS").tag(config=True)
    end_test_delimeter = Unicode("END HIDDEN TESTS").tag(config=True)

    def preprocess(self, nb, resources):
        from .hidden import redact_notebook

        cells = redact_notebook(nb, self.begin_test_delimeter, self.end_test_delimeter)
        self.log.debug("Removed hidden tests from %d cells", cells)
        return nb, resources
