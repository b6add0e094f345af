"""Grade integrity: catch student code that changes how the test cells run, so failing tests pass.

nbgrader runs the teacher's tests in the student's own kernel, after the student's cells, and
awards points for every test cell without an error output. Student code can make a failing test
look passed: an IPython input or AST transformer that turns `assert` into `pass`, a replaced
`run_cell`, a custom exception handler, an event hook, rebound builtins, a patched
`math.isclose`, a substituted module, an object equal to everything. execute drives the kernel
from outside the sandbox, so before each test cell it sends a probe through the kernel:

- a *fact sheet* (steps/integrity_kernel.py) evaluated through `user_expressions`, a path that
  runs no input transformer, AST transformer, `run_cell`, `showtraceback` or custom exception
  handler, bootstrapped without a single name the student's namespace could shadow, reporting
  object addresses that gradeflow compares, outside the sandbox, with those of the same kernel
  before any student cell ran (the first probe); and
- a *statement that must fail* (an assertion with a random nonce and a syntax error: formatting
  its traceback costs milliseconds, a runtime traceback 0.1 s), which the probe runs after the
  facts through the shell's `run_cell`, as ipykernel runs a cell: it must end in a SyntaxError
  and its error must reach the output channel.

One `silent` execution per probe (no execution count, no history, no output in the notebook):
ipykernel evaluates `user_expressions` only when the request's code succeeds, so the failing
statement rides inside the fact sheet rather than the other way round. After the first probe
the kernel sends only the lines that differ from the pristine sheet. The facts are compared
here; what is found is a `Finding` for each test cell it affects, which score turns into no
automatic credit and a TAMPERED notebook. What this cannot catch is in docs/security.md
("Grade integrity").
"""

from __future__ import annotations

import ast
import asyncio
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

__all__ = ["IntegrityMonitor", "Finding", "test_cell_ids", "PROBE_SOURCE"]

PROBE_SOURCE = (Path(__file__).with_name("integrity_kernel.py")).read_text(encoding="utf-8")
# builtins a test typically checks with: a callable of the student's own under one of these names is reported
CHECK_NAMES = frozenset(
    "abs all any bool callable float int isinstance issubclass len round str type hasattr getattr repr set list tuple "
    "dict sorted min max sum AssertionError Exception BaseException".split()
)
PROBE_TIMEOUT = 20.0  # seconds for the kernel to answer (it is idle between cells: it answers in ms)


@dataclass
class Finding:
    """One way the kernel was changed, and the test cells it makes untrustworthy."""

    reason: str
    cells: list[str] = field(default_factory=list)


def _cell_name(cell: Any, index: int) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"


def is_test_cell(cell: Any) -> bool:
    """An autograded test cell: nbgrader's `grade` code cell that is not a solution."""
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _is_teacher_cell(cell: Any) -> bool:
    """A cell of the teacher's (locked or graded, not a solution): student code is elsewhere."""
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta) and not meta.get("solution") and bool(meta.get("locked") or meta.get("grade"))


def test_cell_ids(nb: Any) -> list[str]:
    return [_cell_name(c, i) for i, c in enumerate(nb.cells) if is_test_cell(c)]


def _parse(source: str) -> ast.Module | None:
    """The cell's syntax tree, through IPython's input transformations (magics, `!`, `?`) only when
    it is not plain Python (what IPython would change does not parse as Python)."""
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        pass
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except Exception:  # noqa: BLE001 - a cell that does not parse uses nothing we can check
        return None


@dataclass
class _Uses:
    """What a test cell takes from outside itself: modules, module attributes, builtin names."""

    modules: set[str] = field(default_factory=set)
    local_aliases: dict[str, str] = field(default_factory=dict)  # imported in the test cell itself
    attrs: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


def _imports(nodes: Iterable[ast.AST]) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _uses(source: str) -> _Uses:
    u = _Uses()
    tree = _parse(source)
    if tree is None:
        return u
    nodes = list(ast.walk(tree))  # once: walking the tree costs more than anything done with it
    for node in nodes:
        if isinstance(node, ast.Import):
            u.modules.update(a.name for a in node.names)
            u.modules.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            u.modules.add(node.module)
            for a in node.names:
                if a.name != "*":
                    u.attrs.add((f"<from>{node.module}", (a.name,)))
                    u.local_aliases[f"<from>{node.module}"] = node.module
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            chain, base = [], node
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name):
                u.attrs.add((base.id, tuple(reversed(chain))))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in CHECK_NAMES:
            u.names.add(node.id)
    for alias, target in _imports(nodes).items():
        u.local_aliases.setdefault(alias, target)
    return u


def _cell_files(nb: Any) -> dict[str, str]:
    """ipykernel compiles each cell into a file named after a hash of its source: file -> cell."""
    try:
        from ipykernel.compiler import get_tmp_hash_seed, murmur2_x86
    except ImportError:  # pragma: no cover - ipykernel is a dependency of nbclient's kernels
        return {}
    return {
        f"{murmur2_x86(c.source, get_tmp_hash_seed())}.py": _cell_name(c, i)
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
    }


def _parse_facts(text: str) -> dict[str, Any]:
    """The fact sheet as {kind: {key: value}}; a hook line "H KIND KEY ADDR ORIGIN" goes to facts[KIND]."""
    facts: dict[str, Any] = {k: {} for k in "NBSMCIHTLEPDQAUZXWF"}
    facts["R"] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if parts[0] == "R" and len(parts) == 3:
            facts["R"].append(parts[2])
        elif parts[0] == "H" and len(parts) == 5:
            facts[parts[1]][parts[2]] = (parts[3], parts[4])
        elif parts[0] in facts and len(parts) >= 3:
            facts[parts[0]][parts[1]] = parts[2] if len(parts) == 3 else parts[2:]
    return facts


class IntegrityMonitor:
    """Probes one notebook's kernel before each test cell and collects what it finds.

    Used by the nbclient client in steps/kernel.py: `before_cell` before every code cell,
    `after_cell` after it. `findings` and `summary()` are read once the notebook has run.
    """

    def __init__(self, nb: Any) -> None:
        self.nb = nb
        self._files: dict[str, str] | None = None
        teacher = [
            c
            for c in nb.cells
            if c.cell_type == "code"
            and not c.metadata.get("nbgrader", {}).get("solution")
            and c.metadata.get("nbgrader")
        ]
        self.aliases: dict[str, str] = {}
        for c in teacher:
            tree = _parse(c.source)
            if tree is not None:
                self.aliases.update({a: m for a, m in _imports(ast.walk(tree)).items() if "." not in m or a != m})
        self.pristine: dict[str, Any] | None = None
        self.sheet: list[str] = []  # the pristine fact sheet's lines, which later answers leave out
        self.findings: list[Finding] = []
        self.since: list[str] = []  # the student's cells run since the last probe
        self.student_cells: list[str] = []  # and all that ran so far
        self.probes = 0
        self.seconds = 0.0
        self.error = ""

    # --- called by the notebook client -----------------------------------------------------

    async def before_cell(self, kc: Any, cell: Any, index: int) -> None:
        """Take the pristine facts before the first cell; probe before every test cell."""
        if self.error:
            return
        try:
            if self.pristine is None:
                pristine = await self._facts(kc, self._args(_Uses(), None), None)
                if pristine["X"] or not all(
                    k in pristine["W"] for k in ("class", "index", "code", "builtins", "modules", "hooks", "lines")
                ):
                    raise _ProbeError("; ".join(pristine["X"].values()) or "incomplete answer")
                pristine["BX"] = {k: pristine["W"][k] for k in ("exec", "__import__")}
                self.sheet = [line for line in pristine["lines"] if line[:1] not in ("N", "W")]
                self.pristine = pristine
            if is_test_cell(cell):
                reasons = await self._check(kc, _uses(cell.source))
                name = _cell_name(cell, index)
                for r in reasons:
                    self._add(r, name)
                self.since = []
            elif not _is_teacher_cell(cell):
                self.since.append(_cell_name(cell, index))
                self.student_cells.append(_cell_name(cell, index))
        except _ProbeError as e:
            if self.pristine is None:  # the kernel never answered: nothing to compare with, nothing found
                self.error = str(e)
            elif is_test_cell(cell):
                self._add(f"the kernel did not answer gradeflow's integrity check ({e})", _cell_name(cell, index))

    def summary(self) -> dict[str, Any]:
        return {
            "probes": self.probes,
            "seconds": round(self.seconds, 4),
            "findings": [asdict(f) for f in self.findings],
            **({"error": self.error} if self.error else {}),
        }

    # --- probing -------------------------------------------------------------------------

    def _add(self, reason: str, cell: str) -> None:
        for f in self.findings:
            if f.reason == reason:
                if cell not in f.cells:
                    f.cells.append(cell)
                return
        self.findings.append(Finding(reason, [cell]))

    def _args(self, uses: _Uses, roots: list[str] | None) -> dict[str, Any]:
        p = self.pristine
        return {
            "nonce": secrets.token_hex(16),
            "roots": roots,
            "refs": {k: p["W"][k] for k in ("builtins", "modules", "hooks", "lines")} if p else None,
            "modules": sorted(
                uses.modules | {m for a, m in uses.local_aliases.items() if not a.startswith("<from>") and "." not in m}
            ),
            "aliases": {
                a: m
                for a, m in self.aliases.items()
                if a in {r for r, _ in uses.attrs} and a not in uses.local_aliases and "." not in m
            },
            "local_aliases": {a: m for a, m in uses.local_aliases.items() if "." not in m or a.startswith("<from>")},
            "attrs": sorted([r, list(c)] for r, c in uses.attrs),
            "names": sorted(uses.names),
        }

    def _bootstrap(self, args: dict[str, Any]) -> str:
        """An expression that uses no name from the student's namespace: only syntax, literals and
        one lambda whose locals are bound with `:=` (each nested lambda or comprehension is one
        more code object for the kernel to compile on every probe). It finds a class of the os
        module by the address it had in the pristine kernel (at the place it had among object's
        subclasses, else by a search), takes the builtins from its module, checks them (and,
        after the first probe, the compiled probe kept on that class) against the pristine
        addresses, and runs the probe."""
        p = self.pristine
        start = "O := ().__class__.__base__, S := O.__subclasses__()"
        builtins = "X := C.__init__.__globals__['__builtins__'], B := X if X.__class__ is {}.__class__ else X.__dict__"
        run = f"(N := {{'__builtins__': B, 'A': {args!r}, 'O': O, 'B': B, 'C': C}}, B['exec'](K, N), N['RESULT'])[-1]"
        if p is None:
            find = "C := [c for c in S if c.__name__ == '_wrap_close' and c.__module__ == 'os'][0]"
            code = (
                f"K := B['compile']({PROBE_SOURCE!r}, '<gradeflow-integrity>', 'exec'),"
                " O.__class__.__setattr__(C, '_gradeflow_probe', K)"
            )
            # what later probes check the kernel against (no student code has run yet)
            result = (
                f"{run} + '\\nW\\tclass\\t' + O.__repr__(C) + '\\nW\\tindex\\t' + S.index(C).__repr__()"
                " + '\\nS\\tbuiltins\\t' + O.__repr__(B)"
                " + '\\nW\\tcode\\t' + O.__repr__(K) + '\\nW\\texec\\t' + O.__repr__(B['exec'])"
                " + '\\nW\\t__import__\\t' + O.__repr__(B['__import__'])"
            )
        else:
            cls, i = p["W"]["class"], int(p["W"]["index"])
            find = (
                f"C := S[{i}] if S.__len__() > {i} and O.__repr__(S[{i}]) == {cls!r}"
                f" else [c for c in S if O.__repr__(c) == {cls!r}][0]"
            )
            code = "K := C.__dict__.get('_gradeflow_probe')"
            checks = [f"O.__repr__(B) == {p['S']['builtins']!r}", f"O.__repr__(K) == {p['W']['code']!r}"]
            checks += [f"O.__repr__(B[{k!r}]) == {p['BX'][k]!r}" for k in ("exec", "__import__")]
            forged = (
                f"N\tnonce\t{args['nonce']}\n"
                "X\tbootstrap\tthe interpreter's builtins or gradeflow's compiled probe were replaced"
            )
            result = f"{run} if {' and '.join(checks)} else {forged!r}"
        return f"(lambda: ({start}, {find}, {builtins}, {code}, {result})[-1])()"

    async def _facts(self, kc: Any, args: dict[str, Any], fail_nonce: str | None) -> dict[str, Any]:
        """Send the fact sheet (which also runs the statement that must fail, when there is one),
        wait for its answer and that statement's error output; return the parsed facts."""
        t0 = time.perf_counter()
        self.probes += 1
        msg_id = kc.execute(
            "",
            silent=True,
            store_history=False,
            user_expressions={"gradeflow": self._bootstrap(args)},
            allow_stdin=False,
            stop_on_error=False,
        )
        reply: dict[str, Any] | None = None
        errors: list[dict[str, Any]] = []
        deadline = time.monotonic() + PROBE_TIMEOUT
        try:
            while reply is None:
                msg = await kc.shell_channel.get_msg(timeout=max(0.01, deadline - time.monotonic()))
                if msg["parent_header"].get("msg_id") == msg_id:
                    reply = msg["content"]
            while fail_nonce is not None:  # the error output arrives on IOPub before the kernel goes idle
                msg = await kc.iopub_channel.get_msg(timeout=max(0.01, deadline - time.monotonic()))
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "error":
                    errors.append(msg["content"])
                elif msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                    break
        except (asyncio.TimeoutError, TimeoutError, Exception) as e:  # noqa: BLE001 - queue.Empty from jupyter_client
            if type(e).__name__ in ("Empty", "TimeoutError"):
                raise _ProbeError(f"no answer within {PROBE_TIMEOUT:.0f} s") from None
            raise
        finally:
            self.seconds += time.perf_counter() - t0
        expr = (reply.get("user_expressions") or {}).get("gradeflow") or {}
        if reply.get("status") != "ok" or expr.get("status") != "ok":
            lines = [
                f"N\tnonce\t{args['nonce']}",
                f"X\tprobe\tthe integrity check did not run ({reply.get('ename') or expr.get('ename')}:"
                f" {str(reply.get('evalue') or expr.get('evalue'))[:120]})",
            ]
        else:
            lines = self._whole(ast.literal_eval(expr["data"]["text/plain"]).split("\n"))
        facts = _parse_facts("\n".join(lines))
        facts["lines"] = lines
        ran = not ({"bootstrap", "reference", "probe"} & set(facts["X"]))
        if fail_nonce is not None and ran:
            ok_result = facts["F"].get("status") == ["error", "SyntaxError"]
            ok_output = any(
                e.get("ename") == "SyntaxError" and fail_nonce in "".join(e.get("traceback") or []) for e in errors
            )
            if not ok_result:
                facts["X"]["raise"] = (
                    "an assertion that cannot even compile no longer fails: the kernel changes the code of later cells"
                )
            elif not ok_output:
                facts["X"]["raise"] = (
                    "the error of a failing cell no longer reaches the notebook: failing test cells look passed"
                )
        if facts["N"].get("nonce") != args["nonce"]:
            facts["X"]["nonce"] = "the kernel's answer to the integrity check was not its own (wrong nonce)"
        return facts

    def _whole(self, lines: list[str]) -> list[str]:
        """The full fact sheet from an answer that lists only what differs from the pristine one."""
        if "W\tbase\tpristine" not in lines:
            return lines
        gone = {line[2:] for line in lines if line.startswith("-\t")}
        return [line for line in lines if not line.startswith("-\t")] + [
            line for line in self.sheet if line not in gone
        ]

    async def _check(self, kc: Any, uses: _Uses) -> list[str]:
        assert self.pristine is not None
        nonce = secrets.token_hex(16)
        args = self._args(uses, self.pristine["R"])
        args["fail"] = f"assert 0 == 1, {nonce!r} +"  # a syntax error: its traceback formats in ms
        facts = await self._facts(kc, args, nonce)
        return self._compare(self.pristine, facts)

    # --- what changed ---------------------------------------------------------------------

    def _where(self, origin: str) -> str:
        """'in cell X' for an origin 'untrusted:FILE:LINE' (ipykernel names a cell's file by its hash)."""
        if origin.startswith("untrusted:"):
            f = origin[len("untrusted:") :].rsplit(":", 1)[0]
            if self._files is None:  # only when there is something to report: it imports ipykernel (0.1-0.4 s)
                self._files = _cell_files(self.nb)
            cell = self._files.get(f.rsplit("/", 1)[-1])
            if cell:
                return f" in cell '{cell}'"
            if f.startswith("module "):
                return f" (a class of {f[7:]})"
            if f.startswith(("builtin ", "functools")):
                return f" ({f})"
            if f.startswith("/") and "/ipykernel_" not in f:
                return f" in file {f}"
        cells = self.since or self.student_cells
        if len(cells) == 1:
            return f" in cell '{cells[0]}'"
        if cells:
            return f" in one of the cells {', '.join(repr(c) for c in cells)}"
        return ""

    def _compare(self, p: dict[str, Any], f: dict[str, Any]) -> list[str]:
        if {"bootstrap", "reference", "nonce", "probe"} & set(f["X"]):
            return list(f["X"].values())
        out: list[str] = []
        for name in f["B"]:
            out.append(f"the builtin `{name}` was replaced{self._where('')}")
        for key, what in (
            ("user.__builtins__", "the notebook's `__builtins__`"),
            ("sys.modules", "`sys.modules`"),
            ("sys", "the `sys` module"),
            ("shell", "the IPython shell"),
            ("shell.class", "the IPython shell's class"),
            ("kernel.class", "the kernel's class"),
        ):
            if p["S"].get(key) != f["S"].get(key):
                out.append(f"{what} was replaced{self._where('')}")
        for name in f["M"]:
            out.append(f"the module `{name}` in sys.modules was replaced{self._where('')}")
        for key, addr in p["C"].items():
            if f["C"].get(key) != addr:
                out.append(
                    f"IPython's `{key.split('.', 1)[1]}` was replaced{self._where('')}: it decides how later cells run"
                )
        for key, (addr, origin) in f["I"].items():
            if p["I"].get(key, (None,))[0] != addr:
                out.append(
                    f"`get_ipython().{key.split('.', 1)[1]}` was replaced{self._where(origin)}:"
                    " it decides how later cells run"
                    if key.startswith("shell.")
                    else f"the kernel's `{key.split('.', 1)[1]}` was replaced{self._where(origin)}"
                )
        if p["S"].get("custom_exceptions") != f["S"].get("custom_exceptions"):
            out.append(
                f"a custom exception handler (set_custom_exc) for {f['S'].get('custom_exceptions')} was installed"
                f"{self._where(f['H'].get('CustomTB', ('', ''))[1])}: errors of later cells are handled by student code"
            )
        for name, (_, typename) in f["L"].items():
            if typename != "list":
                out.append(f"IPython's `{name}` was replaced by a {typename}{self._where('')}")
        kinds = {"T": "an input transformer", "E": "an IPython event hook", "P": "an import hook"}
        known = {k: {a for a, _ in p[k].values()} for k in kinds}
        for kind, label in kinds.items():
            for key, (addr, origin) in f[kind].items():
                if (
                    addr in known[kind]
                    or origin == "ok"
                    or key.startswith("sys.excepthook")
                    or key.startswith("sys.displayhook")
                ):
                    continue
                if kind == "T":
                    what = "an AST transformer" if key.startswith("ast_transformers") else label
                    out.append(
                        f"{what} ({key.split('[')[0]}) was added{self._where(origin)}:"
                        " it changes the code of later cells"
                    )
                elif kind == "E":
                    out.append(
                        f"{label} ({key.split('[')[0]}) was added{self._where(origin)}:"
                        " student code runs around later cells"
                    )
                else:
                    out.append(
                        f"{label} ({key.split('[')[0]}) was added{self._where(origin)}:"
                        " it changes what later imports load"
                    )
        for name, (path, kind) in f["D"].items():
            if kind == "installed":
                out.append(f"the module `{name}` the test cells use is not the installed one but {path}")
        for alias, v in f["Q"].items():
            out.append(
                f"`{alias}`, which the teacher's cells import as the module `{v[0]}`, was rebound{self._where('')}"
            )
        for path, (_, origin) in f["A"].items():
            if origin not in ("ok", "c"):
                out.append(
                    f"`{path.replace('<from>', '')}`, which the test cells call, was replaced{self._where(origin)}"
                )
        for name, origin in f["U"].items():
            if origin not in ("ok", "c"):
                out.append(f"the test cells' `{name}` is not the builtin but the submission's own{self._where(origin)}")
        for cls, origin in f["Z"].items():
            out.append(
                f"objects of class `{cls}`{self._where(origin)} compare equal to anything:"
                " tests comparing them with == cannot fail"
            )
        return list(dict.fromkeys(out + list(f["X"].values())))  # the behavioural finding last: it says less


class _ProbeError(Exception):
    pass


# --- what score and merge do with the findings -----------------------------------------------

ENAME = "GradeflowIntegrityError"


def withhold_credit(nb: Any, integrity: dict[str, Any]) -> tuple[list[str], str]:
    """Give each affected test cell an error output that says why: nbgrader's own rule then gives it
    0 points, and the teacher sees the reason on the cell in Formgrader. Returns (cells, reason)."""
    import nbformat

    reasons: dict[str, list[str]] = {}
    for f in integrity.get("findings") or []:
        for c in f["cells"]:
            reasons.setdefault(c, []).append(f["reason"])
    cells = []
    for i, cell in enumerate(nb.cells):
        name = _cell_name(cell, i)
        if name in reasons and is_test_cell(cell):
            cells.append(name)
            lines = [
                f"gradeflow: no automatic credit for this test cell: student code changed how it runs ({r})."
                " Review it and grade it by hand."
                for r in reasons[name]
            ]
            cell.outputs.append(
                nbformat.v4.new_output("error", ename=ENAME, evalue="; ".join(reasons[name]), traceback=lines)
            )
    if not cells:
        return [], ""
    first = next(iter(dict.fromkeys(r for c in cells for r in reasons[c])))
    more = len({r for c in cells for r in reasons[c]}) - 1
    return (
        cells,
        f"{first}{f' (and {more} more finding(s))' if more else ''}; no automatic credit for test cell(s)"
        f" {', '.join(repr(c) for c in cells)}: needs a manual grade",
    )


def flag_for_review(db_url: str, assignment: str, notebook: str, student: str, cells: list[str]) -> None:
    """Mark the withheld test cells as needing a manual grade, so Formgrader lists them."""
    if not cells:
        return
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        for cell in cells:
            gb.find_grade(cell, notebook, assignment, student).needs_manual_grade = True
        gb.db.commit()
