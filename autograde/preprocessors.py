"""nbgrader preprocessors that close gaps of nbgrader's defaults (configured in nbgrader_config.py)."""

from nbgrader.preprocessors import NbGraderPreprocessor


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
