"""Grading policy shared by nbgrader_config.py and the mutant runner, so both judge alike."""

#: The tag that marks heavy demo cells nbgrader may skip while autograding (no graded cell may
#: depend on them). It replaces nbclient's default "skip-execution", which a student could put
#: on a test cell to skip it.
SKIP_TAG = "autograde-skip"

#: nbgrader scores a test cell that writes anything to stderr as failed. Stderr output matching
#: this pattern is harmless library chatter and is removed before scoring.
IGNORED_STDERR = (
    r"Matplotlib is building the font cache"
    r"|IProgress not found\. Please update jupyter and ipywidgets"
)

#: Seconds one cell may run while autograding before it is interrupted and scored 0.
CELL_TIMEOUT = 180
