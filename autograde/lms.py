"""Collecting submissions downloaded from an LMS with ``nbgrader zip_collect``.

The round trip (``tests/test_lms.py`` runs it end to end)::

    # 1. download every submission of an assignment as one zip from the LMS and put it,
    #    unopened, into autograde/downloaded/<assignment>/archive/
    nbgrader zip_collect 07_cnn            # 2. -> autograde/submitted/<student id>/07_cnn/
    nbgrader db student import autograde/examples/roster.csv   # 3. names and emails
    make autograde A=07_cnn                # 4. grade
    make feedback A=07_cnn                 # 5. HTML feedback, hidden tests left out
    make export                            # 6. autograde/grades.csv, one row per student

``nbgrader zip_collect`` extracts the zip, matches every extracted file's *path* against
``FileNameCollectorPlugin.named_regexp`` (nbgrader_config.py sets it from :data:`PATTERNS`;
choose with ``COURSE_LMS=canvas|moodle``, canvas by default) and copies each notebook to
``submitted/<student_id>/<assignment>/<file_id>.ipynb``; other files (PDFs, ``.py``) are
skipped. The collector is nbgrader's default ``ZipCollectApp.collector_plugin``
(``FileNameCollectorPlugin``); another LMS needs only another pattern with the named groups
``student_id`` and ``file_id`` (``timestamp``, ``first_name``, ``last_name``, ``email`` are
optional), set in nbgrader_config.py::

    c.FileNameCollectorPlugin.named_regexp = r".*/(?P<student_id>\\w+)_(?P<file_id>\\w+)\\.ipynb$"

The student id is the LMS's numeric user id: the roster's ``id`` column holds the same ids
(``autograde/examples/roster.csv`` shows the format: id, first_name, last_name, email,
lms_user_id), so that exported grades carry names and can be uploaded back.
"""

from __future__ import annotations

#: Canvas, "Download Submissions": ``<lastnamefirstname>[_LATE]_<userid>_<submissionid>_<name>``,
#: where a resubmitted file gets ``-1``, ``-2`` ... before its extension, e.g.
#: ``lovelaceada_10001_500001_07_cnn.ipynb``, ``turingalan_LATE_10002_500002_07_cnn-1.ipynb``.
CANVAS = (r"^.*/(?P<sortable_name>[^/_]+)(?:_LATE)?_(?P<student_id>\d+)_(?P<submission_id>\d+)"
          r"_(?P<file_id>[^/]+?)(?:-\d+)?\.ipynb$")

#: Moodle, "Download all submissions": ``<Full Name>_<participant id>_assignsubmission_file_``
#: then the file name, or a folder of that name holding the file (``Download submissions in
#: folders``), e.g. ``Ada Lovelace_10001_assignsubmission_file_07_cnn.ipynb``.
MOODLE = (r"^.*/(?P<full_name>[^/_]+)_(?P<student_id>\d+)_assignsubmission_file[_/]"
          r"(?P<file_id>[^/]+)\.ipynb$")

PATTERNS = {"canvas": CANVAS, "moodle": MOODLE}


def pattern(lms: str) -> str:
    """The ``named_regexp`` for an LMS name (``COURSE_LMS``)."""
    try:
        return PATTERNS[lms.lower()]
    except KeyError:
        raise ValueError(f"COURSE_LMS must be one of {sorted(PATTERNS)}, got {lms!r}") from None
