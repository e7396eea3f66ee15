"""nbgrader configuration of the course (the course directory is this folder).

source = solutions/, release = notebooks/, everything of grading under autograde/.
The gradebook is SQLite by default; set COURSE_GRADEBOOK_URL to use another database
(for example postgresql://user@localhost/gradebook).
"""

import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)

from autograde import lms, policy  # noqa: E402
from autograde.preprocessors import (  # noqa: E402
    EnforceGradedExecution,
    HideHiddenTests,
    LimitExecutionOutput,
    StripJupytextMetadata,
)
from nbgrader.converters import Autograde, GenerateAssignment, GenerateFeedback  # noqa: E402
from nbgrader.preprocessors import Execute  # noqa: E402

c = get_config()  # noqa: F821 -- provided by nbgrader when it loads this file

c.CourseDirectory.root = ROOT
c.CourseDirectory.course_id = "dl-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "autograde/submitted"
c.CourseDirectory.autograded_directory = "autograde/autograded"
c.CourseDirectory.feedback_directory = "autograde/feedback"
c.CourseDirectory.solution_directory = "autograde/solution"
c.CourseDirectory.db_url = os.environ.get(
    "COURSE_GRADEBOOK_URL", "sqlite:///" + os.path.join(ROOT, "autograde", "gradebook.db")
)
# The jupytext twins (*.py) of solution notebooks contain the solutions: never release them.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]

# Executing submissions.
c.Execute.timeout = int(os.environ.get("COURSE_CELL_TIMEOUT", policy.CELL_TIMEOUT))
c.Execute.skip_cells_with_tag = policy.SKIP_TAG
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = policy.IGNORED_STDERR

# Deleted test cells come back (nbgrader turns its note into a Python comment in code cells).
c.OverwriteCells.add_missing_cells = True

# Output kept per cell while autograding: a flood of output must not blow up the run or the
# autograded notebook (COURSE_MAX_OUTPUT_KB, 1000 kB by default; see autograde/grade.py).
c.LimitExecutionOutput.max_cell_bytes = int(os.environ.get("COURSE_MAX_OUTPUT_KB", 1000)) * 1000
c.Autograde.autograde_preprocessors = [
    LimitExecutionOutput if p is Execute else p
    for p in Autograde.class_traits()["autograde_preprocessors"].default()
]
c.Autograde.sanitize_preprocessors = [
    *Autograde.class_traits()["sanitize_preprocessors"].default(),
    EnforceGradedExecution,
]
c.GenerateAssignment.preprocessors = [
    *GenerateAssignment.class_traits()["preprocessors"].default(),
    StripJupytextMetadata,
]
# LMS downloads: `nbgrader zip_collect <id>` reads autograde/downloaded/<id>/archive/*.zip and
# files each notebook by the pattern of the LMS's file names (autograde/lms.py documents both).
c.ZipCollectApp.downloaded_directory = "autograde/downloaded"
c.FileNameCollectorPlugin.named_regexp = lms.pattern(os.environ.get("COURSE_LMS", "canvas"))

# Feedback shows test cells and tracebacks: keep hidden tests out of it (nbgrader issue #917).
c.GenerateFeedback.preprocessors = [
    *GenerateFeedback.class_traits()["preprocessors"].default(),
    HideHiddenTests,
]
