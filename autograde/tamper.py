"""Tamper scan: read a submission's student-editable cells statically and flag tricks.

The scan runs outside the student's kernel (nothing of the submission is executed). It reads
the cells a student can change that autograding runs -- nbgrader solution cells and every
unlocked code cell (setup, demos, cells the student added) -- but not the locked test cells,
whose source nbgrader restores from the gradebook anyway (a hidden test may legitimately patch
``F.conv2d``), nor demo cells tagged ``autograde-skip``, which autograding does not run (a
chapter's DDP demo legitimately starts processes).
Each cell is run through IPython's input transformer (so ``%magics`` and ``!shell`` lines
parse), parsed with :mod:`ast`, and checked against these rules:

============== ===================================================================================
rule           flags
============== ===================================================================================
module-attr    assigning, augmenting or deleting an attribute of an imported module or object
               (``torch.allclose = ...``, ``helpers.checks.check = ...``), ``mock.patch``
module-setattr ``setattr``/``delattr``/``__setattr__`` on an imported object, its ``__dict__``,
               ``vars(module)``, writing to ``globals()``
rebind-import  rebinding, at notebook level, a name that holds an imported module and that test
               cells read or the course imports (``checks = Fake()``, ``import numpy as torch``)
shadow-builtin replacing, at notebook level, a builtin that test cells rely on by something
               callable (``def len(x): ...``; ``sum = 0`` is a bug, not a trick)
sys-modules    any use of ``sys.modules``
builtins       ``__builtins__``, ``__import__``
frame          frame, traceback and tracing tricks: ``sys._getframe``, ``inspect.currentframe``,
               ``f_globals``/``f_locals``/``f_back``, ``__globals__``, ``__code__``, settrace
gc             ``gc.get_objects``/``get_referrers``/``get_referents``
reload         ``importlib.reload``
grading-files  paths of notebooks, the gradebook or the course folders (``*.ipynb``, ``*.db``,
               ``gradebook``, ``solutions/``, ``autograde/``, ``../``); sqlite3, nbformat, nbgrader
subprocess     ``subprocess``, ``os.system``/``popen``/``fork``/``exec*``/``spawn*``/``kill``,
               ``multiprocessing``, ``pty``, ``!shell`` lines and shell magics
ctypes         ``ctypes``, ``cffi``
process-exit   ``os._exit``, ``os.abort``
dynamic-code   ``exec``, ``eval``, ``compile`` (code built from strings cannot be scanned)
ipython        ``get_ipython()`` (input transformers, event hooks) and magics that run or load
               code from elsewhere (``%run``, ``%load``, ``%%writefile`` ...)
============== ===================================================================================

Names are resolved through the notebook's imports and aliases (``t = torch``,
``importlib.import_module("torch")``, a parameter defaulting to a module), in execution order,
with Python's scoping: a local ``F``, ``self.x = ...``, ``model.weight = ...`` are not flagged.
It is a static check, so a determined student can hide an object from it (``[torch][0]``,
names built from strings); grading does not rely on it alone -- test cells are restored, the
gradebook and the submission are verified, processes are confined (autograde/grade.py).

Usage::

    python -m autograde.tamper autograde/submitted/*/07_cnn/*.ipynb   # exit 1 if flagged
    python -m autograde.tamper --json ...                              # one JSON object

``scan_notebook(path_or_nb, reference=None)`` returns the findings of one notebook. Give the
released (or source) notebook as ``reference`` when grading: only cells that are locked *in
the reference* are skipped, so a student cannot hide code by marking a cell locked.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import fnmatch
import functools
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from . import policy

__all__ = ["Finding", "scan_notebook", "scan_source", "student_cells", "main"]


@dataclass(frozen=True)
class Finding:
    """One flagged construct: the cell (grade id, cell id or index), 1-based line, rule, why."""

    cell_id: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.cell_id}:{self.line}: [{self.rule}] {self.message}"


# --- what is flagged -------------------------------------------------------------------------

#: Dotted names (fnmatch patterns; a pattern also covers everything below it) whose use is
#: flagged wherever they appear, resolved through the notebook's imports and aliases.
DENIED: list[tuple[str, str, str]] = [
    ("sys.modules", "sys-modules", "uses sys.modules (the table of imported modules)"),
    ("builtins.__import__", "builtins", "uses __import__"),
    ("sys._getframe", "frame", "reads interpreter frames"),
    ("sys._current_frames", "frame", "reads interpreter frames"),
    ("sys.settrace", "frame", "installs a trace function"),
    ("sys.setprofile", "frame", "installs a profile function"),
    ("sys.addaudithook", "frame", "installs an audit hook"),
    ("sys.exc_info", "frame", "reads the current traceback"),
    ("sys.exception", "frame", "reads the current traceback"),
    ("sys.last_traceback", "frame", "reads the last traceback"),
    ("threading.settrace*", "frame", "installs a trace function"),
    ("threading.setprofile*", "frame", "installs a profile function"),
    ("inspect.currentframe", "frame", "reads interpreter frames"),
    ("inspect.stack", "frame", "reads interpreter frames"),
    ("inspect.trace", "frame", "reads interpreter frames"),
    ("inspect.getouterframes", "frame", "reads interpreter frames"),
    ("inspect.getinnerframes", "frame", "reads interpreter frames"),
    ("inspect.getframeinfo", "frame", "reads interpreter frames"),
    ("traceback.walk_stack", "frame", "reads interpreter frames"),
    ("traceback.extract_stack", "frame", "reads interpreter frames"),
    ("gc.get_objects", "gc", "searches every live object"),
    ("gc.get_referrers", "gc", "finds objects through the garbage collector"),
    ("gc.get_referents", "gc", "finds objects through the garbage collector"),
    ("importlib.reload", "reload", "reloads a module"),
    ("imp", "reload", "uses the imp module"),
    ("sqlite3", "grading-files", "opens SQLite databases (the gradebook is one)"),
    ("sqlalchemy", "grading-files", "opens databases (the gradebook is one)"),
    ("nbformat", "grading-files", "reads notebooks"),
    ("nbgrader", "grading-files", "uses nbgrader"),
    ("nbclient", "grading-files", "executes notebooks"),
    ("jupyter_client", "grading-files", "talks to kernels"),
    ("subprocess", "subprocess", "starts processes"),
    ("multiprocessing", "subprocess", "starts processes"),
    ("concurrent.futures.ProcessPoolExecutor", "subprocess", "starts processes"),
    ("torch.multiprocessing.spawn", "subprocess", "starts processes"),
    ("torch.multiprocessing.start_processes", "subprocess", "starts processes"),
    ("torch.multiprocessing.Process", "subprocess", "starts processes"),
    ("torch.multiprocessing.Pool", "subprocess", "starts processes"),
    ("pty", "subprocess", "starts processes"),
    ("pexpect", "subprocess", "starts processes"),
    ("asyncio.create_subprocess_*", "subprocess", "starts processes"),
    ("os.system", "subprocess", "runs a shell command"),
    ("os.popen", "subprocess", "runs a shell command"),
    ("os.fork*", "subprocess", "forks the kernel"),
    ("os.exec*", "subprocess", "replaces the kernel process"),
    ("os.spawn*", "subprocess", "starts processes"),
    ("os.posix_spawn*", "subprocess", "starts processes"),
    ("os.kill*", "subprocess", "sends signals to processes"),
    ("os.pidfd_open", "subprocess", "sends signals to processes"),
    ("signal.pthread_kill", "subprocess", "sends signals to threads"),
    ("ctypes", "ctypes", "calls C code directly (ctypes)"),
    ("cffi", "ctypes", "calls C code directly (cffi)"),
    ("os._exit", "process-exit", "kills the kernel"),
    ("os.abort", "process-exit", "kills the kernel"),
    ("builtins.exec", "dynamic-code", "runs code built from a string (exec)"),
    ("builtins.eval", "dynamic-code", "runs code built from a string (eval)"),
    ("builtins.compile", "dynamic-code", "compiles code built from a string (compile)"),
    ("IPython.get_ipython", "ipython", "uses get_ipython() (it can rewrite or hook later cells)"),
    ("IPython.core.getipython", "ipython", "uses get_ipython()"),
    ("unittest.mock.patch", "module-attr", "patches attributes with mock.patch"),
    ("mock.patch", "module-attr", "patches attributes with mock.patch"),
    ("pytest.MonkeyPatch", "module-attr", "patches attributes with MonkeyPatch"),
]

#: Attribute names flagged on any object: frames, tracebacks, function internals.
DENIED_ATTRIBUTES = {
    "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next",
    "gi_frame", "cr_frame", "ag_frame", "__globals__", "__code__", "__closure__", "__defaults__",
    "__kwdefaults__", "__subclasses__", "__builtins__",
}

#: Settings that are meant to be assigned: attribute and item stores below them are fine.
CONFIG_PREFIXES = (
    "torch.backends", "torch._dynamo.config", "torch._inductor.config",
    "torch._functorch.config", "matplotlib.rcParams", "matplotlib.pyplot.rcParams",
    "pandas.options", "os.environ", "numpy.random.seed",
)

#: Builtins that test cells rely on. Replacing one at notebook level by something callable
#: (a def, a class, a lambda, another function) is flagged; ``sum = 0`` is a bug, not a trick.
WATCHED_BUILTINS = {
    "abs", "all", "any", "bool", "callable", "float", "getattr", "hasattr", "int",
    "isinstance", "issubclass", "len", "max", "min", "print", "repr", "round", "str", "sum",
    "type", "AssertionError", "Exception", "BaseException",
}
#: Values that cannot be callable: binding a watched builtin to one of them is not flagged.
INERT_VALUES = (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.JoinedStr,
                ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.ListComp, ast.SetComp,
                ast.DictComp)

#: Paths of the grading machinery: notebooks (the restored one holds the hidden tests), the
#: gradebook, the course folders, parent directories.
SENSITIVE_PATH = re.compile(
    r"ipynb|gradebook|\.db\b|\.sqlite|nbgrader|HIDDEN TESTS|BEGIN SOLUTION"
    r"|(^|[/\\])(solutions|autograde|autograded|submitted)([/\\]|$)"
    r"|(^|[/\\])\.\.([/\\]|$)",
    re.IGNORECASE,
)

#: Magics that are harmless in a graded notebook; their code argument (``%time``,
#: ``%%timeit`` ...) is scanned like any cell. Every other magic is flagged.
SAFE_MAGICS = {"matplotlib", "config", "pinfo", "pinfo2", "psearch", "who", "whos", "who_ls",
               "precision", "xmode", "pprint", "pdef", "pdoc", "psource", "html", "markdown",
               "latex", "svg", "javascript", "js", "capture", "time", "timeit", "prun",
               "autoreload"}
#: Extensions that ``%load_ext`` may load.
SAFE_EXTENSIONS = {"autoreload"}
CODE_MAGICS = {"time", "timeit", "prun", "capture"}
SHELL_MAGICS = {"system", "sx", "sc", "bash", "sh", "script", "perl", "ruby", "python",
                "python2", "python3", "pypy"}

NAMESPACE_MUTATORS = {"update", "setdefault", "pop", "popitem", "clear", "__setitem__",
                      "__delitem__"}


@functools.lru_cache(maxsize=4096)
def _denied(dotted: str) -> tuple[str, str] | None:
    for pattern, rule, why in DENIED:
        if fnmatch.fnmatchcase(dotted, pattern) or fnmatch.fnmatchcase(dotted, pattern + ".*"):
            return rule, why
    return None


def _configurable(dotted: str) -> bool:
    return any(dotted == p or dotted.startswith(p + ".") for p in CONFIG_PREFIXES)


# --- scopes ----------------------------------------------------------------------------------

IMPORT = "import"  # a binding made by an import statement (or an alias of an imported object)


@dataclass
class _Scope:
    kind: str  # "module", "function", "class"
    #: name -> dotted path when the name holds an imported object, else None (a plain local)
    names: dict[str, str | None]
    declared_global: set[str]


def _import_bindings(node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, str]]:
    """(bound name, dotted path of what it holds) for each name an import statement binds."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                yield alias.asname, alias.name
            else:
                root = alias.name.split(".")[0]
                yield root, root
    else:
        base = "." * node.level + (node.module or "")
        for alias in node.names:
            if alias.name != "*":
                yield alias.asname or alias.name, f"{base}.{alias.name}" if base else alias.name


def _imported_paths(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """Every dotted module/object name an import statement loads (for the denied list)."""
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names)
    else:
        base = node.module or ""
        for alias in node.names:
            yield base if alias.name == "*" else (f"{base}.{alias.name}" if base else alias.name)


def _target_names(target: ast.expr) -> Iterator[ast.Name]:
    """Names bound by an assignment target (through tuples, lists and starred)."""
    if isinstance(target, ast.Name):
        yield target
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _target_names(elt)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


_SCOPE_KINDS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp,
                ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass
class _BodyInfo:
    """What a scope's body binds, computed once per body."""

    bindings: list[tuple[str, str | None]]  # (name, import path or None), in order
    globals: set[str]
    nonlocals: set[str]
    aliases: list[tuple[str, ast.expr]]  # ``name = <expr>`` candidates for module aliases


_BODY_INFO: dict[tuple[int, int], tuple[ast.AST, _BodyInfo]] = {}


def _scope_children(body: list[ast.AST]) -> Iterator[ast.AST]:
    """Every node of a scope's body, not descending into nested functions, classes, lambdas
    or comprehensions (their own scopes), but including those nodes themselves."""
    stack = list(body)[::-1]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPE_KINDS):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _body_info(body: list[ast.AST]) -> _BodyInfo:
    """The bindings of a scope body (cached: parsed trees are shared and never modified)."""
    if not body:
        return _BodyInfo([], set(), set(), [])
    key = (id(body[0]), len(body))
    cached = _BODY_INFO.get(key)
    if cached is not None and cached[0] is body[0]:
        return cached[1]
    info = _BodyInfo([], set(), set(), [])
    for node in _scope_children(body):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            info.bindings.extend(_import_bindings(node))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            info.bindings.append((node.name, None))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            info.bindings.append((node.id, None))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            info.bindings.append((node.name, None))
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            info.bindings.append((node.name, None))
        elif isinstance(node, ast.MatchMapping) and node.rest:
            info.bindings.append((node.rest, None))
        elif isinstance(node, ast.Global):
            info.globals.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            info.nonlocals.update(node.names)
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, (ast.Name, ast.Attribute, ast.Call))):
            info.aliases.append((node.targets[0].id, node.value))
    _BODY_INFO[key] = (body[0], info)
    return info


# --- the checker -----------------------------------------------------------------------------


class _Checker(ast.NodeVisitor):
    """Walks one cell's tree with the notebook-level scope and collects findings."""

    def __init__(self, module: _Scope, imports: dict[str, set[str]], cell_id: str,
                 report: bool = True, watched: frozenset[str] | None = None):
        self.scopes = [module]  # module: the notebook's names as execution reaches this cell
        self.imports = imports  # name -> every dotted path an import binds it to, notebook-wide
        self.watched = watched  # names test cells read or the course imports (None: all)
        self.cell_id = cell_id
        self.report = report  # False: only follow the cell's bindings (a locked cell)
        self.offset = 0
        self.findings: list[Finding] = []

    # helpers
    def flag(self, node: ast.AST, rule: str, message: str) -> None:
        if self.report:
            line = getattr(node, "lineno", 1) + self.offset
            self.findings.append(Finding(self.cell_id, line, rule, message))

    def visit(self, node: ast.AST) -> None:
        super().visit(node)
        if isinstance(node, ast.stmt) and len(self.scopes) == 1:
            self._bind(node)

    def _bind(self, stmt: ast.stmt) -> None:
        """Follow, in execution order, what a notebook-level statement binds: imports and
        aliases of imported objects (``t = torch``) hold a dotted path, anything else None."""
        names = self.scopes[0].names
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update(_import_bindings(stmt))
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[stmt.name] = None
        elif isinstance(stmt, ast.Assign):
            alias = self.imported(stmt.value) if len(stmt.targets) == 1 else None
            for target in stmt.targets:
                for name in _target_names(target):
                    names[name.id] = alias if name is target else None
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
            for name in _target_names(stmt.target):
                names[name.id] = None
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                for name in _target_names(item.optional_vars) if item.optional_vars else ():
                    names[name.id] = None

    def lookup(self, name: str) -> tuple[str | None, str | None]:
        """(dotted path, origin) of a name: origin "import" or "builtin", or (None, None)."""
        scopes = self.scopes
        if name in scopes[-1].declared_global:
            scopes = scopes[:1]
        for i in range(len(scopes) - 1, -1, -1):
            scope = scopes[i]
            if scope.kind == "class" and i != len(scopes) - 1:
                continue  # class bodies are not visible from their methods
            if name in scope.names:
                path = scope.names[name]
                return (path, IMPORT) if path else (None, None)
        paths = self.imports.get(name, set())
        if len(paths) == 1:  # imported by a later cell: there when a function runs
            return next(iter(paths)), IMPORT
        if name == "get_ipython":
            return "IPython.get_ipython", IMPORT
        if hasattr(builtins, name) or name == "__builtins__":
            return f"builtins.{name}", "builtin"
        return None, None

    def resolve(self, node: ast.AST) -> tuple[str | None, str | None]:
        """Dotted path and origin of a Name/Attribute chain (or an import_module call)."""
        if isinstance(node, ast.Name):
            return self.lookup(node.id)
        if isinstance(node, ast.Attribute):
            base, origin = self.resolve(node.value)
            return (f"{base}.{node.attr}", origin) if base else (None, None)
        if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)):
            func, _ = self.resolve(node.func)
            if func in ("importlib.import_module", "builtins.__import__"):
                return node.args[0].value, IMPORT
        return None, None

    def imported(self, node: ast.AST) -> str | None:
        path, origin = self.resolve(node)
        return path if origin == IMPORT else None

    # scopes
    def _enter(self, kind: str, body: list[ast.AST], args: ast.arguments | None = None) -> None:
        """Push the scope of a function or class body: its parameters and local names."""
        params = {a.arg for a in _all_args(args)}
        info = _body_info(body)
        not_local = info.globals | info.nonlocals
        names: dict[str, str | None] = dict.fromkeys(params)
        for name, path in info.bindings:
            if name in not_local or name in params:
                continue
            names[name] = names.get(name) or path
        self.scopes.append(_Scope(kind, names, info.globals))

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        for dec in getattr(node, "decorator_list", []):
            self.visit(dec)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        body = node.body if isinstance(node.body, list) else [node.body]
        # a parameter whose default is an imported object is an alias: def f(m=torch)
        positional = [*node.args.posonlyargs, *node.args.args]
        defaults = list(zip(positional[len(positional) - len(node.args.defaults):],
                            node.args.defaults, strict=True))
        defaults += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults,
                                            strict=True) if d]
        aliased = {a.arg: self.imported(d) for a, d in defaults}
        self._enter("function", body, node.args)
        self.scopes[-1].names.update({k: v for k, v in aliased.items() if v})
        self._alias_scan(body)
        if isinstance(node, ast.Lambda):
            self.visit(node.body)
        else:
            self._body(body)
        self.scopes.pop()

    def _alias_scan(self, body: list[ast.AST]) -> None:
        """Mark ``t = torch`` style aliases of imported objects in the current scope."""
        scope = self.scopes[-1]
        for name, value in _body_info(body).aliases:
            path = self.imported(value)
            if path and name not in scope.declared_global:
                scope.names[name] = path

    def _body(self, body: list[ast.AST]) -> None:
        for stmt in body:
            self.visit(stmt)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._check_binding(node.name, node)
        self._function(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._check_binding(node.name, node)
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        self._enter("class", node.body)
        self._body(node.body)
        self.scopes.pop()

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp
                       | ast.GeneratorExp) -> None:
        names = {n.id: None for gen in node.generators for n in _target_names(gen.target)}
        self.visit(node.generators[0].iter)  # evaluated in the enclosing scope
        self.scopes.append(_Scope("function", names, set()))
        for i, gen in enumerate(node.generators):
            if i:
                self.visit(gen.iter)
            self.visit(gen.target)
            for cond in gen.ifs:
                self.visit(cond)
        for part in ("elt", "key", "value"):
            if hasattr(node, part):
                self.visit(getattr(node, part))
        self.scopes.pop()

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    # notebook-level rebinding
    def _at_notebook_level(self, name: str) -> bool:
        scope = self.scopes[-1]
        return scope.kind == "module" or name in scope.declared_global

    def _check_binding(self, name: str, node: ast.AST, import_path: str | None = None,
                       value: ast.AST | None = None) -> None:
        """Flag rebinding, at notebook level, an imported name or a watched builtin.

        ``value``: the assigned expression, when known (then inert values of builtins pass).
        """
        if not self._at_notebook_level(name):
            return
        # rebinding matters for names that hold a module when it happens, and that the test
        # cells read or the course imports (`checks`, `torch`); a name imported by a later
        # cell is not bound yet, and `t = torch.zeros(3)` after `import torch as t` is a bug
        tested = self.watched is None or name in self.watched
        current = self.scopes[0].names.get(name) if tested else None
        if import_path is not None:
            if current and current != import_path:
                self.flag(node, "rebind-import",
                          f"imports {import_path} as `{name}`, which holds {current} here")
            elif name in WATCHED_BUILTINS:
                self.flag(node, "shadow-builtin", f"replaces the builtin `{name}` by an import")
        elif isinstance(value, INERT_VALUES):
            return  # None, a number, a list...: nothing that could stand in for a module
        elif current:
            self.flag(node, "rebind-import",
                      f"rebinds `{name}`, which holds the imported {current} here")
        elif name in WATCHED_BUILTINS:
            self.flag(node, "shadow-builtin",
                      f"replaces the builtin `{name}` that test cells rely on")

    def _assigned(self, targets: list[ast.expr], value: ast.AST | None) -> None:
        for target in targets:
            for name in _target_names(target):
                self._check_binding(name.id, name, value=value if name is target else None)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._assigned(node.targets, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._assigned([node.target], node.value or ast.Constant(None))
        self.generic_visit(node)

    def visit_withitem(self, node: ast.withitem) -> None:
        if node.optional_vars is not None:
            self._assigned([node.optional_vars], None)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._assigned([node.target], ast.Constant(0))  # x += ... keeps x's kind
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self._assigned([node.target], node.value)
        self.visit(node.value)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self._assigned([node.target], ast.Constant(0))
        self.generic_visit(node)

    visit_AsyncFor = visit_For

    # visitors
    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for path in _imported_paths(node):
            denied = _denied(path)
            if denied:
                self.flag(node, denied[0], f"imports {path}: {denied[1]}")
            elif path.split(".")[0] in ("builtins", "__builtin__"):
                self.flag(node, "builtins", f"imports {path} (the builtins module)")
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            base = node.module or ""
            for pattern, rule, why in DENIED:
                if pattern.startswith(base + "."):
                    self.flag(node, rule, f"`from {base} import *` brings in {pattern}: {why}")
                    break
        for name, path in _import_bindings(node):
            self._check_binding(name, node, path)

    visit_ImportFrom = visit_Import

    def visit_Global(self, node: ast.Global) -> None:
        pass

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            return  # bindings are checked where the binding statement is visited
        if node.id == "__builtins__":
            self.flag(node, "builtins", "uses __builtins__")
            return
        self._check_denied(node)

    def _check_denied(self, node: ast.Name | ast.Attribute) -> bool:
        path, origin = self.resolve(node)
        if path and origin:
            denied = _denied(path)
            if denied:
                self.flag(node, denied[0], f"`{_unparse(node)}` {denied[1]}")
                return True
        return False

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in DENIED_ATTRIBUTES:
            rule = "builtins" if node.attr == "__builtins__" else "frame"
            self.flag(node, rule, f"uses `.{node.attr}` (interpreter internals)")
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            owner = self.imported(node.value)
            if owner and not _configurable(f"{owner}.{node.attr}"):
                verb = "deletes" if isinstance(node.ctx, ast.Del) else "assigns"
                self.flag(node, "module-attr",
                          f"{verb} `{_unparse(node)}`, an attribute of the imported {owner}")
        elif node.attr == "__dict__" and self.imported(node.value):
            self.flag(node, "module-setattr",
                      f"reaches the namespace of {self.imported(node.value)} via __dict__")
        self._check_denied(node)
        self.visit(node.value)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            owner = self.imported(node.value)
            if owner and not _configurable(owner):
                self.flag(node, "module-attr", f"changes an item of the imported {owner}")
            if self._is_namespace_call(node.value):
                self.flag(node, "module-setattr", "writes to the notebook's namespace directly")
        self.generic_visit(node)

    def _is_namespace_call(self, node: ast.AST) -> bool:
        if not isinstance(node, ast.Call):
            return False
        func, origin = self.resolve(node.func)
        if func in ("builtins.globals", "builtins.locals"):
            return True
        return func == "builtins.vars" and not node.args

    def visit_Call(self, node: ast.Call) -> None:
        func, origin = self.resolve(node.func)
        first = node.args[0] if node.args else None
        if func in ("builtins.setattr", "builtins.delattr") and first is not None:
            owner = self.imported(first)
            if owner:
                self.flag(node, "module-setattr",
                          f"{func.split('.')[1]}() on the imported {owner}")
        elif func == "builtins.vars" and first is not None and self.imported(first):
            self.flag(node, "module-setattr",
                      f"reaches the namespace of {self.imported(first)} via vars()")
        if isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            if attr in ("__setattr__", "__delattr__"):
                owner = (self.imported(first) if first is not None else None) or \
                    self.imported(node.func.value)
                if owner:
                    self.flag(node, "module-setattr", f"{attr}() on the imported {owner}")
            if attr in NAMESPACE_MUTATORS and self._is_namespace_call(node.func.value):
                self.flag(node, "module-setattr", "writes to the notebook's namespace directly")
            if self._magic(node):
                return
        self.generic_visit(node)

    # IPython: magics arrive as get_ipython().run_line_magic(...) after the transformer
    def _magic(self, node: ast.Call) -> bool:
        """Handle a transformed magic or shell line; True when it was one."""
        func = node.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)
                and isinstance(func.value.func, ast.Name) and func.value.func.id == "get_ipython"
                and self.lookup("get_ipython")[0] == "IPython.get_ipython"):
            return False
        args = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None
                for a in node.args]
        if func.attr in ("system", "getoutput"):
            self.flag(node, "subprocess", f"runs a shell command: !{args[0] if args else ''}")
            return True
        if func.attr not in ("run_line_magic", "run_cell_magic") or len(args) < 2 or not args[0]:
            return False
        name, line = args[0], args[1] or ""
        cell = args[2] if len(args) > 2 else None
        prefix = "%%" if func.attr == "run_cell_magic" else "%"
        if name in SHELL_MAGICS:
            self.flag(node, "subprocess", f"runs a shell: {prefix}{name}")
        elif name in ("load_ext", "reload_ext") and line.strip() in SAFE_EXTENSIONS:
            pass
        elif name not in SAFE_MAGICS:
            self.flag(node, "ipython", f"uses the magic {prefix}{name}")
        elif name in CODE_MAGICS:
            self._nested(line, node.lineno - 1, strip_options=True)
            if cell is not None:
                self._nested(cell, node.lineno, strip_options=False)
        for arg in node.args[3:]:
            self.visit(arg)
        return True

    def _nested(self, code: str, offset: int, strip_options: bool) -> None:
        """Scan the code argument of %time/%%timeit... in the current scope."""
        tree = _parse(code, strip_options)
        if tree is None:
            return
        saved = self.offset
        self.offset += offset
        self._body(tree.body)
        self.offset = saved

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(value, str) and SENSITIVE_PATH.search(value):
            self.flag(node, "grading-files",
                      f"names a grading file or folder: {value[:60]!r}")

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a docstring or a bare string: inert
        self.generic_visit(node)


def _all_args(args: ast.arguments | None) -> list[ast.arg]:
    if args is None:
        return []
    return [a for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg,
                        args.kwarg] if a is not None]


def _unparse(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


# --- parsing ---------------------------------------------------------------------------------

_FLAGS = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def _transform(source: str) -> str:
    """The Python that IPython runs for a cell: magics and shell lines become calls."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


@functools.lru_cache(maxsize=2048)
def _parse(source: str, strip_options: bool = False) -> ast.Module | None:
    """Parse a cell as IPython would run it; None when it is not valid (it cannot run).

    Plain Python parses as it is (IPython leaves it alone); anything else goes through
    IPython's transformer first. The trees are cached and shared: never modify them.
    """
    try:
        return compile(source, "<cell>", "exec", flags=_FLAGS, dont_inherit=True)
    except (SyntaxError, ValueError):
        pass
    try:
        code = _transform(source)
    except Exception:  # noqa: BLE001 -- IPython's transformer rejects some broken input
        code = source
    candidates = [code]
    if strip_options:  # "-n 10 -r 3 f(x)": drop leading option words until it parses
        words = code.split()
        candidates += [" ".join(words[i:]) for i in range(1, len(words))]
    for candidate in candidates:
        try:
            return compile(candidate, "<cell>", "exec", flags=_FLAGS, dont_inherit=True)
        except (SyntaxError, ValueError):
            continue
    return None


# --- notebooks -------------------------------------------------------------------------------


def _meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _cell_label(cell: dict, index: int) -> str:
    return _meta(cell).get("grade_id") or cell.get("id") or f"cell[{index}]"


def _read(path_or_nb: str | Path | dict) -> nbformat.NotebookNode:
    if isinstance(path_or_nb, nbformat.NotebookNode):
        return path_or_nb  # only read, never modified
    if isinstance(path_or_nb, dict):
        return nbformat.from_dict(path_or_nb)
    return nbformat.read(str(path_or_nb), as_version=4)


def _locked_ids(nb: nbformat.NotebookNode) -> set[str]:
    return {_meta(c)["grade_id"] for c in nb.cells
            if c.cell_type == "code" and _meta(c).get("locked") and _meta(c).get("grade_id")
            and not _meta(c).get("solution")}


def _skipped_when_grading(cell: dict) -> bool:
    """Autograding skips ungraded cells tagged with the skip tag (heavy demos); graded and
    solution cells lose their tags first (preprocessors.EnforceGradedExecution)."""
    meta = _meta(cell)
    return (policy.SKIP_TAG in cell.get("metadata", {}).get("tags", [])
            and not (meta.get("grade") or meta.get("solution")))


def student_cells(nb: nbformat.NotebookNode,
                  reference: nbformat.NotebookNode | None = None) -> list[tuple[int, dict]]:
    """(index, cell) of the code cells a student can change that autograding runs as given.

    Left out: locked cells, whose source nbgrader restores before running them (with a
    ``reference``, the released or source notebook, only its locked cells count as locked),
    and cells autograding skips (tagged ``autograde-skip``, neither graded nor a solution).
    """
    locked = _locked_ids(reference if reference is not None else nb)
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            and not (_meta(c).get("grade_id") in locked and not _meta(c).get("solution"))
            and not _skipped_when_grading(c)]


def _notebook_imports(trees: Iterable[ast.Module]) -> dict[str, set[str]]:
    imports: dict[str, set[str]] = {}
    for tree in trees:
        for name, path in _body_info(tree.body).bindings:
            if path:
                imports.setdefault(name, set()).add(path)
    return imports


def scan_source(source: str, cell_id: str = "cell", context: Iterable[str] = ()) -> list[Finding]:
    """Findings of one piece of student code, run after the ``context`` cells (whose imports
    and names it sees, as in a notebook)."""
    cells = [("", t, False) for t in (_parse(s) for s in context) if t is not None]
    tree = _parse(source)
    if tree is None:
        return []
    return _scan_trees([*cells, (cell_id, tree, True)])


#: Findings of one cell in one notebook state, so that scanning many variants of a notebook
#: (every mutant swapped into the solution) re-reads only the cells that changed.
_CELL_CACHE: dict[tuple, tuple[ast.Module, list[Finding], dict[str, str | None]]] = {}


def _scan_trees(cells: list[tuple[str, ast.Module, bool]],
                watched: frozenset[str] | None = None) -> list[Finding]:
    """Findings of the cells marked True among (cell id, tree, report) in execution order;
    ``watched``: the names test cells read or the course imports (None: every name)."""
    imports = _notebook_imports(tree for _, tree, _ in cells)
    imports_key = hash((tuple(sorted((k, tuple(sorted(v))) for k, v in imports.items())),
                        tuple(sorted(watched)) if watched is not None else None))
    if len(_CELL_CACHE) > 50_000:
        _CELL_CACHE.clear()
    state: dict[str, str | None] = {}
    findings: list[Finding] = []
    for cell_id, tree, report in cells:
        key = (id(tree), cell_id, report, imports_key, hash(tuple(sorted(state.items()))))
        cached = _CELL_CACHE.get(key)
        if cached is None or cached[0] is not tree:
            module = _Scope("module", dict(state), set())
            checker = _Checker(module, imports, cell_id, report, watched)
            checker._body(tree.body)
            cached = _CELL_CACHE[key] = (tree, checker.findings, module.names)
        findings.extend(cached[1])
        state = cached[2]
    seen: set[tuple[str, int, str]] = set()
    result = []
    for f in findings:  # one finding per rule and line is enough to read
        if (f.cell_id, f.line, f.rule) not in seen:
            seen.add((f.cell_id, f.line, f.rule))
            result.append(f)
    return result


def scan_notebook(path_or_nb: str | Path | dict,
                  reference: str | Path | dict | None = None) -> list[Finding]:
    """Findings of the student-editable cells of a notebook (a path or a notebook dict).

    ``reference``: the released (or source) notebook of the same assignment; with it, a cell
    is skipped as a locked test cell only if the reference has a locked cell of that grade id.
    """
    nb = _read(path_or_nb)
    ref = _read(reference) if reference is not None else None
    editable = {i for i, _ in student_cells(nb, ref)}
    cells: list[tuple[str, ast.Module, bool]] = []
    watched: set[str] = set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or _skipped_when_grading(cell):
            continue  # autograding does not run it
        tree = _parse(cell.source)
        if tree is not None:
            cells.append((_cell_label(cell, i), tree, i in editable))
            if i not in editable:
                watched |= _names_read(tree)
    for cell in (ref if ref is not None else nb).cells:
        if cell.cell_type != "code" or _skipped_when_grading(cell):
            continue
        tree = _parse(cell.source)
        if tree is None:
            continue
        if _meta(cell).get("locked"):  # a source notebook's hidden tests read names too
            watched |= _names_read(tree)
        # what the course itself imports (torch, F, checks ...) is watched, used by tests or not
        watched |= {name for name, path in _body_info(tree.body).bindings if path}
    return _scan_trees(cells, frozenset(watched))


def _names_read(tree: ast.Module | None) -> set[str]:
    if tree is None:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


# --- command line ----------------------------------------------------------------------------


def _reference_for(path: Path, release: Path | None) -> Path | None:
    """The released notebook <release>/<assignment>/<name>.ipynb for a submitted one."""
    if release is None:
        return None
    candidate = release / path.parent.name / path.name
    return candidate if candidate.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograde.tamper",
        description="Flag tampering in the student-editable cells of submitted notebooks.")
    parser.add_argument("notebooks", nargs="+", type=Path, help="notebooks to scan")
    parser.add_argument("--release", type=Path, default=None,
                        help="folder of released notebooks (<release>/<assignment>/<name>.ipynb)"
                             " used to tell locked cells; default: the course's notebooks/")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    release = args.release
    if release is None:
        default = Path(__file__).resolve().parents[1] / "notebooks"
        release = default if default.is_dir() else None
    report: dict[str, list[Finding]] = {}
    for path in args.notebooks:
        report[str(path)] = scan_notebook(path, _reference_for(path, release))
    flagged = {p: f for p, f in report.items() if f}
    if args.json:
        print(json.dumps({p: [asdict(x) for x in f] for p, f in report.items()}, indent=1))
    else:
        for path, findings in flagged.items():
            print(path)
            for f in findings:
                print(f"  {f.cell_id} line {f.line}: [{f.rule}] {f.message}")
        total = sum(len(f) for f in flagged.values())
        print(f"{len(report)} notebook(s) scanned, {len(flagged)} flagged, {total} finding(s)")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
