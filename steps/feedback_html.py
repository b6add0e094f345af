"""The feedback page's conversion: nbgrader GenerateFeedback's exporter, doing less work twice.

`nbgrader generate_feedback` converts each notebook with nbconvert's HTMLExporter, nbgrader's
`feedback` template and two preprocessors, GetGrades and CSSHTMLHeaderPreprocessor. The feedback
step runs that same conversion once per submission, in a worker that converts many. Profiled
per submission (two notebooks): about 40 % BeautifulSoup's pass over the page, 25 % GetGrades'
queries and replaying the grades into a scratch gradebook, 15 % highlighting code and rendering
markdown, most of that for cells every student has (instructions, tests, locked cells).

So, with the output unchanged byte for byte (tests compare it with `nbgrader generate_feedback`'s
and with nbconvert's HTMLExporter, student HTML that breaks the parse included):

- `FeedbackExporter` memoizes its pure filters per process: `markdown2html` (a markdown cell
  without attachments) and `highlight_code` (a cell's source, lexer and language); and its
  BeautifulSoup pass over the page sees a token for each highlighted code block (about half of
  a page's tags), each block being written as BeautifulSoup writes it alone, remembered
  (see `FeedbackExporter.from_notebook_node` for why that is the same).
- `GetGradesAtOnce` is GetGrades reading a notebook's grades and comments with one query each
  instead of one or two per cell: the same nbgrader columns (`Grade.score`, `Grade.max_score`,
  `Comment.comment`), so manual scores, extra credit and comments count as nbgrader counts them.
"""

from __future__ import annotations

import os
import secrets
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


_ASCII_SPACES = "\x20\x0a\x09\x0c\x0d"  # what BeautifulSoup counts as spaces


def _spaces(text: str) -> bool:
    return all(c in _ASCII_SPACES for c in text)


def _collapse(text: str) -> str:
    """A string of spaces as BeautifulSoup keeps it outside <pre>: one newline, or one space."""
    return "" if not text else "\n" if "\n" in text else " "


def _parts(block: str) -> tuple[str | None, str, str]:
    """(text before the first tag, first tag to last tag, text after the last tag) of a block;
    (None, ...) when it does not start and end with spaces around tags."""
    start, end = block.find("<"), block.rfind(">")
    if start < 0 or end < start or not _spaces(block[:start]) or not _spaces(block[end + 1 :]):
        return None, block, ""
    return block[:start], block[start : end + 1], block[end + 1 :]


class _MemoHighlight:
    """One notebook's `highlight_code` filter (a Highlight2HTML for its lexer), answering from a
    per-exporter memo: the same source, lexer and language give the same HTML. While a page is
    converted it returns a stand-in token instead (FeedbackExporter.from_notebook_node)."""

    def __init__(self, inner: Highlight2HTML, exporter: FeedbackExporter) -> None:
        self.inner, self.exporter = inner, exporter

    def __call__(self, source: str, language: str | None = None, metadata: Any = None) -> str:
        magics = (metadata or {}).get("magics_language")
        key = (
            self.inner.pygments_lexer,
            repr(sorted(self.inner.extra_formatter_options.items())),
            source,
            language,
            magics,
        )
        block = _remember(self.exporter.highlighted, key, lambda: self.inner(source, language, metadata))
        return self.exporter.stand_in(block)


class FeedbackExporter(HTMLExporter):
    """HTMLExporter whose markdown and code-highlighting filters remember their results, and
    whose BeautifulSoup pass skips the highlighted code blocks (see from_notebook_node)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._markdown: dict[Any, str] = {}
        self.highlighted: dict[Any, str] = {}
        self._souped: dict[str, str] = {}  # highlighted block -> as BeautifulSoup writes it
        self._blocks: dict[str, str] | None = None  # token -> block, while a page is converted
        self._prefix = ""

    def stand_in(self, block: str) -> str:
        if self._blocks is None:
            return block
        token = f"{self._prefix}{len(self._blocks)}x"
        self._blocks[token] = block
        return token

    def from_notebook_node(self, nb: Any, resources: Any = None, **kw: Any) -> tuple[str, Any]:
        """HTMLExporter.from_notebook_node with each highlighted code block replaced by a token
        for BeautifulSoup's pass over the page, then by the block as BeautifulSoup writes it
        alone (remembered: most blocks are the same for every student).

        The same bytes: a highlighted block is pygments' balanced, script-free markup, so
        html.parser builds the same subtree from it, and BeautifulSoup writes it the same, alone
        as in the page, as long as the parser is not inside a <script> or <style> there. Each
        token is checked to sit in an ordinary element, once; otherwise (an unclosed <script>
        in some output before it) the page is converted again the plain way."""
        self._blocks, self._prefix = {}, f"gradeflowcode{secrets.token_hex(8)}n"
        try:
            html, out = self._convert(nb, resources, **kw)
            blocks = self._blocks
        finally:
            self._blocks = None
        if blocks is not None and html is not None:
            return self._put_back(html, blocks), out
        return self._convert(nb, resources, **kw)

    def _convert(self, nb: Any, resources: Any, **kw: Any) -> tuple[Any, Any]:
        """nbconvert 7's HTMLExporter.from_notebook_node, the page's soup checked for tokens
        before it is written (html None: a token is not where it can be swapped)."""
        from bs4 import BeautifulSoup
        from nbconvert.exporters.templateexporter import TemplateExporter
        from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

        langinfo = nb.metadata.get("language_info", {})
        lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
        highlight_code = self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))
        resources = self._init_resources(resources)
        filter_data_type = WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self, resources=resources)
        self.register_filter("highlight_code", highlight_code)
        self.register_filter("filter_data_type", filter_data_type)
        html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        soup = BeautifulSoup(html, features="html.parser")
        missing_alt = 0
        for elem in soup.select("img:not([alt])"):
            elem.attrs["alt"] = "No description has been provided for this image"
            missing_alt += 1
        if missing_alt:
            self.log.warning("Alternative text is missing on %s image(s).", missing_alt)
        for elem in soup.select(".jp-Notebook div.jp-Cell-inputWrapper"):
            elem.attrs["tabindex"] = "0"
        for elem in soup.select(".jp-Notebook div.jp-OutputArea-output"):
            elem.attrs["tabindex"] = "0"
        if self._blocks and not self._settle(soup):
            self._blocks = None  # convert again without tokens
            return None, resources
        return str(soup), resources

    def _settle(self, soup: Any) -> bool:
        """Write each token's text as the page's parse would have: there, the text before a block
        and the text after it (with the block's own trailing newline) are separate strings, and
        BeautifulSoup turns a string of spaces only into one newline or space. False when a token
        is anywhere else than alone between such spaces in an ordinary element."""
        from bs4 import NavigableString

        found = soup.find_all(string=lambda text: self._prefix in text)
        if sum(t.count(self._prefix) for t in found) != len(self._blocks or {}):
            return False
        for text in found:
            if (
                text.parent is None
                or text.parent.name in ("script", "style", "textarea", "title")
                or text.find_parent(["pre", "textarea"]) is not None
            ):
                return False
            token = next((k for k in self._blocks or {} if k in text), None)
            if token is None or text.count(self._prefix) != 1:
                return False
            before, after = text.split(token)
            lead, _, trail = _parts(self._blocks[token])
            if lead is None or not _spaces(before + lead) or not _spaces(trail + after):
                return False
            text.replace_with(NavigableString(_collapse(before + lead) + token + _collapse(trail + after)))
        return True

    def _put_back(self, html: str, blocks: dict[str, str]) -> str:
        from bs4 import BeautifulSoup

        for token, block in blocks.items():
            core = _parts(block)[1]
            souped = _remember(self._souped, core, lambda core=core: str(BeautifulSoup(core, features="html.parser")))
            if html.count(token) != 1:
                raise RuntimeError(f"a code block's stand-in appears {html.count(token)} times in the page")
            html = html.replace(token, souped)
        return html

    @pass_context
    def markdown2html(self, context: Any, source: str) -> str:
        if context.get("cell", {}).get("attachments"):  # images in the cell: not worth remembering
            return HTMLExporter.markdown2html(self, context, source)
        path = context.get("resources", {}).get("metadata", {}).get("path", "")
        return _remember(self._markdown, (source, path), lambda: HTMLExporter.markdown2html(self, context, source))

    def register_filter(self, name: str, jinja_filter: Any) -> Any:
        if name == "highlight_code" and isinstance(jinja_filter, Highlight2HTML):
            jinja_filter = _MemoHighlight(jinja_filter, self)
        return super().register_filter(name, jinja_filter)


class GetGradesAtOnce(GetGrades):
    """nbgrader's GetGrades with a notebook's grades and comments read in one query each."""

    def preprocess(self, nb: Any, resources: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        from nbgrader.api import BaseCell, Comment, Grade, Gradebook

        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            snb = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
            q = gb.db.query
            self._scores = {
                name: (score, top)
                for name, score, top in q(BaseCell.name, Grade.score, Grade.max_score)
                .join(Grade, Grade.cell_id == BaseCell.id)
                .filter(Grade.notebook_id == snb.id)
            }
            self._comments = dict(
                q(BaseCell.name, Comment.comment)
                .join(Comment, Comment.cell_id == BaseCell.id)
                .filter(Comment.notebook_id == snb.id)
                .all()
            )
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
    c.HTMLExporter.extra_template_paths = [
        os.path.join(base, "server_extensions", "formgrader", "static", "node_modules", "bootstrap", "dist", "css")
    ]
    exporter = FeedbackExporter(config=c)
    exporter.register_preprocessor(CSSHTMLHeaderPreprocessor)  # exactly as GenerateFeedback does: byte-identical pages
    return exporter
