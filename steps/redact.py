"""RedactHiddenTests: take hidden tests out of a graded notebook before a student sees it.

nbgrader's own feedback shows the whole test cell, hidden tests included (nbgrader issues #917
and #1363), and nbgrader's ClearHiddenTests only deletes the region from the source. A graded
notebook also quotes hidden lines in its outputs: a failing `assert` prints a traceback with the
failing line and the lines around it, an assertion message is echoed in the error value. So this
preprocessor, in nbgrader's shape (one class, `(nb, resources) -> (nb, resources)`, the same
configurable delimiters as ClearHiddenTests):

1. replaces each region between the delimiters by one notice line, at the region's indent;
2. collects the hidden lines' text (and the string literals in them), leaving out any line a
   student can see anyway (the same text outside a hidden region);
3. redacts every output line that quotes one of them: stream text, tracebacks (ANSI colours
   removed first, since IPython colours a quoted line token by token), error values and
   text results; an HTML or other rich output that quotes one is replaced as a whole.

What it cannot know: a value a hidden test computes and prints without quoting its own source
(`print(secret)`) is shown. Tests that print are rare; docs/security.md says so.
"""

from __future__ import annotations

import html
import io
import re
import tokenize
from typing import Any

from nbgrader.preprocessors import ClearHiddenTests

__all__ = ["RedactHiddenTests", "NOTICE", "REDACTED"]

NOTICE = "# (hidden tests: not shown in feedback)"
REDACTED = "[a line of a hidden test: not shown]"
MIN_FRAGMENT = 4  # shorter text (`)`, `}`, `pass`) gives nothing away and would match anywhere

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TAGS = re.compile(r"<[^>]*>")


def _plain(text: str) -> str:
    return _ANSI.sub("", text)


def _literals(line: str) -> list[str]:
    """The string literals of one line of Python, without their quotes ('' when it does not tokenize)."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
            if tok.type == tokenize.STRING:
                body = re.sub(r"^[rbuRBUfF]*('''|\"\"\"|'|\")", "", tok.string)
                out.append(re.sub(r"('''|\"\"\"|'|\")$", "", body))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


class RedactHiddenTests(ClearHiddenTests):
    """Replace hidden-test regions by a notice and redact outputs that quote them."""

    def _split(self, source: str) -> tuple[list[str], list[str]]:
        """(the lines with each hidden region replaced by NOTICE, the hidden lines)."""
        shown: list[str] = []
        hidden: list[str] = []
        in_test = False
        for line in source.split("\n"):
            if self.begin_test_delimeter in line:
                if in_test:
                    raise RuntimeError("Encountered nested begin hidden tests statements")
                in_test = True
                shown.append(line[: len(line) - len(line.lstrip())] + NOTICE)
            elif self.end_test_delimeter in line:
                in_test = False
            elif in_test:
                hidden.append(line)
            else:
                shown.append(line)
        if in_test:
            raise RuntimeError("No end hidden tests statement found")
        return shown, hidden

    def preprocess(self, nb: Any, resources: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        hidden: list[str] = []
        visible: set[str] = set()
        for cell in nb.cells:
            shown, cut = self._split(cell.source)
            if cut:
                cell.source = "\n".join(shown)
            hidden += cut
            visible.update(" ".join(line.split()) for line in shown)
        fragments = set()
        for line in hidden:
            text = " ".join(line.split())
            if len(text) >= MIN_FRAGMENT and text not in visible:
                fragments.add(text)
                fragments.update(s for s in _literals(line) if len(s.strip()) >= MIN_FRAGMENT)
        nb.metadata.pop("celltoolbar", None)
        if fragments:
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs = [self._redact_output(o, fragments) for o in cell.get("outputs", [])]
        resources.setdefault("nbgrader", {})["hidden_lines_redacted"] = len(hidden)
        return nb, resources

    @staticmethod
    def _quotes(text: str, fragments: set[str]) -> bool:
        flat = " ".join(_plain(text).split())
        return any(f in flat for f in fragments)

    def _redact_text(self, text: str, fragments: set[str]) -> str:
        return "\n".join(REDACTED if self._quotes(line, fragments) else line for line in text.split("\n"))

    def _redact_output(self, output: Any, fragments: set[str]) -> Any:
        kind = output.get("output_type")
        if kind == "stream":
            output["text"] = self._redact_text(output.get("text", ""), fragments)
        elif kind == "error":
            output["traceback"] = [self._redact_text(t, fragments) for t in output.get("traceback", [])]
            if self._quotes(output.get("evalue", ""), fragments):
                output["evalue"] = REDACTED
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {})
            for mime, value in list(data.items()):
                if not isinstance(value, str):
                    continue
                if mime == "text/plain":
                    data[mime] = self._redact_text(value, fragments)
                elif self._quotes(html.unescape(_TAGS.sub(" ", value)), fragments) or self._quotes(value, fragments):
                    data.pop(mime)
            if not data:
                data["text/plain"] = REDACTED
        return output

    def preprocess_cell(self, cell: Any, resources: dict[str, Any], index: int) -> tuple[Any, dict[str, Any]]:
        return cell, resources  # all the work is in preprocess: it needs every cell's lines first
