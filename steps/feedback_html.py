"""The feedback page's conversion: nbgrader GenerateFeedback's exporter, doing less work twice.

`nbgrader generate_feedback` converts each notebook with nbconvert's HTMLExporter, nbgrader's
`feedback` template and two preprocessors, GetGrades and CSSHTMLHeaderPreprocessor. The feedback
step runs that same conversion once per submission, in a worker that converts many. Profiled
per submission (two notebooks): about 40 % BeautifulSoup's pass over the page, 25 % GetGrades'
queries and replaying the grades into a scratch gradebook, 15 % highlighting code and rendering
markdown, most of that for cells every student has (instructions, tests, locked cells).

So, with the output unchanged byte for byte (tests compare it with `nbgrader generate_feedback`'s):

- `FeedbackExporter` memoizes its pure filters per process: `markdown2html` (a markdown cell
  without attachments) and `highlight_code` (a cell's source, lexer and language).
- `GetGradesAtOnce` is GetGrades reading a notebook's grades and comments with one query each
  instead of one or two per cell: the same nbgrader columns (`Grade.score`, `Grade.max_score`,
  `Comment.comment`), so manual scores, extra credit and comments count as nbgrader counts them.
"""
from __future__ import annotations

import os
from typing import Any

from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbgrader.preprocessors import GetGrades

__all__ = ["FeedbackExporter", "GetGradesAtOnce", "feedback_exporter"]

MEMO_LIMIT = 4096  # entries per memo; a worker converts one assignment's notebooks, far fewer distinct cells


def _remember(memo: dict[Any, str], key: Any, make: Any) -> str:
    hit = memo.get(key)
    if hit is None:
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        hit = memo[key] = make()
    return hit


class _MemoHighlight:
    """One notebook's `highlight_code` filter (a Highlight2HTML for its lexer), answering from a
    per-exporter memo: the same source, lexer and language give the same HTML."""

    def __init__(self, inner: Highlight2HTML, memo: dict[Any, str]) -> None:
        self.inner, self.memo = inner, memo

    def __call__(self, source: str, language: str | None = None, metadata: Any = None) -> str:
        magics = (metadata or {}).get("magics_language")
        key = (self.inner.pygments_lexer, repr(sorted(self.inner.extra_formatter_options.items())), source, language, magics)
        return _remember(self.memo, key, lambda: self.inner(source, language, metadata))


class FeedbackExporter(HTMLExporter):
    """HTMLExporter whose markdown and code-highlighting filters remember their results."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._markdown: dict[Any, str] = {}
        self._highlighted: dict[Any, str] = {}

    @pass_context
    def markdown2html(self, context: Any, source: str) -> str:
        if context.get("cell", {}).get("attachments"):  # images in the cell: not worth remembering
            return HTMLExporter.markdown2html(self, context, source)
        path = context.get("resources", {}).get("metadata", {}).get("path", "")
        return _remember(self._markdown, (source, path), lambda: HTMLExporter.markdown2html(self, context, source))

    def register_filter(self, name: str, jinja_filter: Any) -> Any:
        if name == "highlight_code" and isinstance(jinja_filter, Highlight2HTML):
            jinja_filter = _MemoHighlight(jinja_filter, self._highlighted)
        return super().register_filter(name, jinja_filter)


class GetGradesAtOnce(GetGrades):
    """nbgrader's GetGrades with a notebook's grades and comments read in one query each."""

    def preprocess(self, nb: Any, resources: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        from nbgrader.api import BaseCell, Comment, Grade, Gradebook

        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            snb = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
            q = gb.db.query
            self._scores = {name: (score, top) for name, score, top in q(BaseCell.name, Grade.score, Grade.max_score).join(Grade, Grade.cell_id == BaseCell.id).filter(Grade.notebook_id == snb.id)}
            self._comments = dict(q(BaseCell.name, Comment.comment).join(Comment, Comment.cell_id == BaseCell.id).filter(Comment.notebook_id == snb.id).all())
            nb, resources = super(GetGrades, self).preprocess(nb, resources)  # the cells, as GetGrades does
            late_penalty = snb.late_submission_penalty
            if late_penalty is None:
                late_penalty = 0
            else:
                self.log.warning("Late submission penalty: {}".format(late_penalty))
            resources["nbgrader"]["score"] = snb.score - late_penalty
            resources["nbgrader"]["max_score"] = snb.max_score
            resources["nbgrader"]["late_penalty"] = late_penalty
        return nb, resources

    def _get_comment(self, cell: Any, resources: Any) -> None:
        from nbgrader.api import MissingEntry

        name = cell.metadata["nbgrader"]["grade_id"]
        if name not in self._comments:
            raise MissingEntry()
        cell.metadata.nbgrader["comment"] = self._comments[name]

    def _get_score(self, cell: Any, resources: Any) -> None:
        from nbgrader.api import MissingEntry

        name = cell.metadata["nbgrader"]["grade_id"]
        if name not in self._scores:
            raise MissingEntry()
        cell.metadata.nbgrader["score"], cell.metadata.nbgrader["points"] = self._scores[name]


def feedback_exporter() -> FeedbackExporter:
    """GenerateFeedback's exporter: nbgrader's `feedback` template and bootstrap CSS, and
    CSSHTMLHeaderPreprocessor registered as GenerateFeedback registers it."""
    import nbgrader
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from traitlets.config import Config

    base = os.path.dirname(nbgrader.__file__)
    c = Config()
    c.Exporter.default_preprocessors = []  # as nbgrader's converters set it
    c.HTMLExporter.template_name = "feedback"
    c.HTMLExporter.extra_template_basedirs = [os.path.join(base, "server_extensions", "formgrader", "templates")]
    c.HTMLExporter.extra_template_paths = [os.path.join(base, "server_extensions", "formgrader", "static", "node_modules", "bootstrap", "dist", "css")]
    exporter = FeedbackExporter(config=c)
    exporter.register_preprocessor(CSSHTMLHeaderPreprocessor)  # exactly as GenerateFeedback does: byte-identical pages
    return exporter
