"""The tamper scan (autograde/tamper.py): no false positive on the course, every trick flagged.

- every solution notebook, every released notebook and every mutant (swapped into its cell)
  of every chapter in solutions/ scans clean -- new chapters are picked up by themselves;
- every tampering snippet of the table below, put into a solution cell of a real chapter, is
  flagged with the right rule; the tricky honest snippets are not;
- every hostile submission of autograde/hostile/ is flagged exactly when its expected outcome
  names tampering;
- locked test cells are not read (nbgrader restores them; a hidden test may patch F.conv2d),
  unless a student forged the lock; magics parse; the command line reports and exits 1.
"""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograde import hostile
from autograde.course import (
    RELEASE,
    ROOT,
    SOLUTIONS,
    load_mutants,
    nbgrader_meta,
    read_notebook,
    with_cells_replaced,
)
from autograde.tamper import Finding, scan_notebook, scan_source, student_cells
from autograde.tamper import main as tamper_main

from .conftest import ASSIGNMENTS, NOTEBOOKS


def describe(findings: list[Finding]) -> str:
    return "\n".join(str(f) for f in findings)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_false_positives_on_solutions_releases_and_mutants(assignment):
    scanned = 0
    names = [n for a, n in NOTEBOOKS if a == assignment]
    mutants = load_mutants(assignment)
    for name in names:
        solution = read_notebook(SOLUTIONS / assignment / f"{name}.ipynb")
        editable = {nbgrader_meta(c).get("grade_id") for _, c in student_cells(solution)}
        answers = {nbgrader_meta(c)["grade_id"] for c in solution.cells
                   if nbgrader_meta(c).get("solution") and c.cell_type == "code"}
        assert answers <= editable, "every solution code cell must be scanned"
        findings = scan_notebook(solution, solution)
        assert not findings, f"{assignment}/{name} (solution):\n{describe(findings)}"
        scanned += 1
        released = RELEASE / assignment / f"{name}.ipynb"
        if released.exists():  # a chapter being written may not be released yet
            findings = scan_notebook(released, released)
            assert not findings, f"{assignment}/{name} (released):\n{describe(findings)}"
            scanned += 1
        for m in mutants:
            if m.get("notebook", names[0]) != name:
                continue
            assert m["cell"] in editable, f"mutant {m['name']!r}: {m['cell']} is not scanned"
            findings = scan_notebook(with_cells_replaced(solution, {m["cell"]: m["code"]}),
                                     solution)
            assert not findings, f"{assignment} mutant {m['name']!r}:\n{describe(findings)}"
            scanned += 1
    print(f"{assignment}: {scanned} notebooks scanned, 0 false positives")


#: (snippet, rule it must raise). Each replaces a solution cell of a real chapter.
TAMPERING = [
    ("import torch\ntorch.allclose = lambda *a, **k: True", "module-attr"),
    ("import helpers.checks\nhelpers.checks.check = None", "module-attr"),
    ("import numpy as np\nnp.testing.assert_allclose = print", "module-attr"),
    ("import torch\ntorch.Tensor.__eq__ = lambda a, b: True", "module-attr"),
    ("import torch.nn.functional as F\nF.relu += 0", "module-attr"),
    ("import torch\ndel torch.allclose", "module-attr"),
    ("from helpers import checks\nchecks.check_close.__code__ = print.__code__", "module-attr"),
    ("from helpers.checks import check_close\ncheck_close.__wrapped__ = None", "module-attr"),
    ("import torch as t\nalias = t\nalias.allclose = print", "module-attr"),
    ("import importlib\nm = importlib.import_module('torch')\nm.allclose = print",
     "module-attr"),
    ("import torch\ndef patch(m=torch):\n    m.allclose = print", "module-attr"),
    ("from unittest import mock\nmock.patch('torch.allclose', print).start()", "module-attr"),
    ("import torch\nimport unittest.mock\nunittest.mock.patch.object(torch, 'allclose').start()",
     "module-attr"),
    ("import torch\nsetattr(torch, 'allclose', lambda *a, **k: True)", "module-setattr"),
    ("from helpers import checks\ndelattr(checks, 'check_close')", "module-setattr"),
    ("import torch\nvars(torch)['allclose'] = print", "module-setattr"),
    ("import torch\ntorch.__dict__['allclose'] = print", "module-setattr"),
    ("import torch\nobject.__setattr__(torch, 'allclose', print)", "module-setattr"),
    ("globals()['checks'] = None", "module-setattr"),
    ("globals().update(checks=None)", "module-setattr"),
    ("from helpers import checks\nclass checks:\n    check_close = print", "rebind-import"),
    ("import numpy as checks", "rebind-import"),
    ("import helpers.checks\nimport types\nchecks = types.SimpleNamespace()", "rebind-import"),
    ("class Fake:\n    pass\ndef f():\n    global torch\n    torch = Fake()", "rebind-import"),
    ("def isinstance(obj, kind):\n    return True", "shadow-builtin"),
    ("len = lambda x: 3", "shadow-builtin"),
    ("all = any", "shadow-builtin"),
    ("import sys\nsys.modules['helpers.checks'] = None", "sys-modules"),
    ("from sys import modules\nmodules['torch'].allclose = print", "sys-modules"),
    ("import builtins\nbuiltins.len = lambda x: 3", "builtins"),
    ("__builtins__.isinstance = lambda *a: True", "builtins"),
    ("__import__('os').system('ls')", "builtins"),
    ("import sys\nsys._getframe(1).f_globals['checks'] = None", "frame"),
    ("import inspect\ncaller = inspect.currentframe().f_back", "frame"),
    ("import sys\nsys.settrace(lambda *a: None)", "frame"),
    ("import threading\nthreading.settrace(print)", "frame"),
    ("(lambda: 0).__globals__['checks'] = None", "frame"),
    ("classes = ().__class__.__base__.__subclasses__()", "frame"),
    ("import gc\nfor obj in gc.get_objects():\n    pass", "gc"),
    ("import gc\ngc.get_referrers(print)", "gc"),
    ("import importlib\nfrom helpers import checks\nimportlib.reload(checks)", "reload"),
    ("from importlib import reload", "reload"),
    ("text = open('01_tensors.ipynb').read()", "grading-files"),
    ("import json\nsource = json.load(open('../../../solutions/ch/ch.json'))", "grading-files"),
    ("from pathlib import Path\ndata = Path('../gradebook.db').read_bytes()", "grading-files"),
    ("import glob\nmine = glob.glob('*.ipynb')", "grading-files"),
    ("name = 'x'\npath = f'{name}.ipynb'", "grading-files"),
    ("from pathlib import Path\nlisting = list(Path('autograde/submitted').iterdir())",
     "grading-files"),
    ("import sqlite3", "grading-files"),
    ("import nbformat", "grading-files"),
    ("import subprocess\nsubprocess.run(['ls'])", "subprocess"),
    ("import os\nos.system('ls')", "subprocess"),
    ("import os\nos.popen('ls')", "subprocess"),
    ("import os\npid = os.fork()", "subprocess"),
    ("import os\nos.execv('/bin/ls', ['ls'])", "subprocess"),
    ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", "subprocess"),
    ("import multiprocessing\nmultiprocessing.Process(target=print).start()", "subprocess"),
    ("import pty", "subprocess"),
    ("from os import system\nsystem('ls')", "subprocess"),
    ("from os import *", "subprocess"),
    ("!ls ..", "subprocess"),
    ("files = !ls", "subprocess"),
    ("for i in range(2):\n    !echo hi", "subprocess"),
    ("%%bash\nls", "subprocess"),
    ("%system ls", "subprocess"),
    ("import ctypes\nctypes.string_at(0)", "ctypes"),
    ("import os\nos._exit(0)", "process-exit"),
    ("exec('x = 1')", "dynamic-code"),
    ("value = eval('1 + 1')", "dynamic-code"),
    ("code = compile('x = 1', '<s>', 'exec')", "dynamic-code"),
    ("run = exec\nrun('x = 1')", "dynamic-code"),
    ("get_ipython().events.register('pre_run_cell', print)", "ipython"),
    ("ip = get_ipython()\nip.input_transformers_cleanup.append(lambda lines: [])", "ipython"),
    ("%run other.py", "ipython"),
    ("%%writefile helpers.py\nx = 1", "ipython"),
    ("%%time\nimport torch\ntorch.allclose = print", "module-attr"),
    ("%timeit -n1 -r1 __import__('os')", "builtins"),
]

#: Honest code that looks a little like the tricks: none of it may be flagged.
HONEST = [
    "import torch\nfrom torch import nn\nmodel = nn.Linear(3, 1)\n"
    "model.weight = nn.Parameter(torch.zeros(1, 3))",
    "import torch\nfrom torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n"
    "        super().__init__()\n        self.fc = nn.Linear(2, 2)\n"
    "        setattr(self, 'layer1', nn.Linear(2, 2))",
    "import numpy as np\nimport torch\ntorch.manual_seed(0)\nnp.random.seed(0)",
    "import torch\nx = torch.zeros(3)\nx.data = torch.ones(3)\nx.grad = None",
    "def fit(F, nn, torch):\n    F.weight = 1\n    nn.bias = 2\n    torch.x = 3",
    "def g():\n    checks = {}\n    checks['a'] = 1\n    np = object\n    return checks, np",
    "import torch\nsignal = torch.sin(torch.arange(10.0))\ngc = signal * 2\nsignal.grad = None",
    "import torch.nn.functional as F\nF = torch.relu",  # no test cell reads F here
    "import torch\nfrom torch import nn\nmodel = nn.Sequential(nn.Linear(2, 2), nn.Dropout())\n"
    "model.eval()\nfor name, module in model.named_children():\n    module.train()",
    "import torch\nfrom torch import nn\ncompiled = torch.compile(nn.Linear(2, 2))",
    "import torch\ntorch.backends.cudnn.benchmark = True",
    "import matplotlib.pyplot as plt\nplt.rcParams['figure.figsize'] = (4, 3)",
    "import os\nos.environ['OMP_NUM_THREADS'] = '1'\nn = os.cpu_count()",
    "import gc\ngc.collect()\nimport inspect\nsig = inspect.signature(print)",
    "import torch\nfrom pathlib import Path\nPath('runs').mkdir(exist_ok=True)\n"
    "torch.save({}, Path('runs') / 'model.pt')",
    "results = {'plain': 1.0, 'residual': 2.0}\nsum = 0\nfor v in results.values():\n    sum += v",
    "def f():\n    '''Reads data.csv, never the .ipynb or the gradebook.'''\n    return 1",
    "import torch\nworkers = 1 if torch.multiprocessing.get_start_method() == 'fork' else 0",
    "%timeit sum(range(10))",
    "%matplotlib inline",
    "%%time\nx = [i * i for i in range(10)]",
    "%load_ext autoreload\n%autoreload 2",
    "import torch\ntorch.allclose?",
    "import copy\nclass Box:\n    pass\nbox = Box()\nbox.value = copy.deepcopy([1])",
    "import torch\ndef step(opt):\n    opt.zero_grad()\n    for group in opt.param_groups:\n"
    "        group['lr'] = 0.1",
    "with open('results.txt', 'w') as f:\n    f.write('ok')",
    "print('eval() and exec() are not used here')",
    "def broken(:\n    pass",  # does not parse: it cannot run either
]


@pytest.fixture(scope="module")
def host():
    """The first chapter's solution notebook and its first solution cell's grade id."""
    nb = read_notebook(SOLUTIONS / ASSIGNMENTS[0] / f"{NOTEBOOKS[0][1]}.ipynb")
    cell = next(nbgrader_meta(c)["grade_id"] for c in nb.cells
                if nbgrader_meta(c).get("solution") and c.cell_type == "code")
    return nb, cell


@pytest.mark.parametrize("snippet, rule", TAMPERING, ids=[f"{r}-{i}" for i, (_, r)
                                                            in enumerate(TAMPERING)])
def test_every_trick_is_flagged(host, snippet, rule):
    nb, cell = host
    findings = scan_notebook(with_cells_replaced(nb, {cell: snippet}), nb)
    assert rule in {f.rule for f in findings}, f"expected [{rule}], got:\n{describe(findings)}"
    assert {f.cell_id for f in findings} == {cell}
    lines = len(snippet.splitlines())
    assert all(1 <= f.line <= lines for f in findings), describe(findings)


@pytest.mark.parametrize("snippet", HONEST, ids=[f"honest-{i}" for i in range(len(HONEST))])
def test_honest_code_is_not_flagged(host, snippet):
    nb, cell = host
    findings = scan_notebook(with_cells_replaced(nb, {cell: snippet}), nb)
    assert not findings, describe(findings)


def test_findings_point_at_the_line():
    code = "x = 1\n\nimport torch\ntorch.allclose = print\n"
    assert scan_source(code) == [Finding("cell", 4, "module-attr",
                                         "assigns `torch.allclose`, an attribute of the "
                                         "imported torch")]
    (finding,) = scan_source("%%time\ny = 2\nimport os\nos.system('ls')", "ex01_1_solution")
    assert (finding.cell_id, finding.line, finding.rule) == ("ex01_1_solution", 4, "subprocess")


def _cell(source: str, gid: str, solution: bool, locked: bool):
    meta = {"grade": not solution, "grade_id": gid, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False, "points": 0 if solution else 1}
    return new_code_cell(source, metadata={"nbgrader": meta})


PATCHING_TEST = ("from unittest import mock\nimport torch.nn.functional as F\n"
                 "with mock.patch.object(F, 'conv2d', side_effect=RuntimeError):\n    pass")


def test_locked_test_cells_are_not_read_unless_the_lock_is_forged():
    reference = new_notebook()
    reference.cells = [_cell("x = 1", "ex00_1_solution", True, False),
                       _cell(PATCHING_TEST, "ex00_1_test", False, True)]
    assert scan_source(PATCHING_TEST), "the test cell's code alone is flagged"
    assert scan_notebook(reference, reference) == []
    assert scan_notebook(reference) == []

    forged = nbformat.from_dict(reference)
    forged.cells.append(_cell("import torch\ntorch.allclose = print", "my_own_cell", False, True))
    assert scan_notebook(forged) == [], "without a reference, the metadata is all we know"
    (finding,) = scan_notebook(forged, reference)
    assert (finding.cell_id, finding.rule) == ("my_own_cell", "module-attr")

    unlocked = nbformat.from_dict(reference)
    unlocked.cells[1].metadata["nbgrader"]["locked"] = False  # nbgrader still restores it
    assert scan_notebook(unlocked, reference) == []
    added = nbformat.from_dict(reference)
    added.cells.append(new_code_cell(PATCHING_TEST))  # the same code in a cell of one's own
    assert {f.rule for f in scan_notebook(added, reference)} == {"module-attr"}


def test_hostile_submissions_are_flagged_exactly_when_they_tamper():
    source = hostile.source_notebook()
    cases = hostile.load_cases()
    assert cases, "no hostile cases?"
    flagged_cases = 0
    for case in cases:
        findings = scan_notebook(case.submission(source), source)
        tampers = "tampering" in case.reasons
        assert bool(findings) == tampers, (
            f"hostile case {case.name} ({case.what}): expected "
            f"{'findings' if tampers else 'none'}, got:\n{describe(findings)}")
        flagged_cases += tampers
    assert flagged_cases >= 6, "the tampering cases of issue 8 are missing"


def test_command_line(tmp_path, capsys):
    nb = read_notebook(SOLUTIONS / ASSIGNMENTS[0] / f"{NOTEBOOKS[0][1]}.ipynb")
    cell = next(nbgrader_meta(c)["grade_id"] for c in nb.cells
                if nbgrader_meta(c).get("solution") and c.cell_type == "code")
    clean, bad = tmp_path / "clean.ipynb", tmp_path / "bad.ipynb"
    nbformat.write(nb, clean)
    nbformat.write(with_cells_replaced(nb, {cell: "import os\nos.system('cat ../*.db')"}), bad)
    proc = subprocess.run([sys.executable, "-m", "autograde.tamper", str(clean), str(bad)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{cell} line 2: [subprocess]" in proc.stdout
    assert f"{cell} line 2: [grading-files]" in proc.stdout
    assert "2 notebook(s) scanned, 1 flagged" in proc.stdout
    assert tamper_main(["--json", str(clean), str(bad)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report[str(clean)] == []
    assert {f["rule"] for f in report[str(bad)]} == {"subprocess", "grading-files"}
