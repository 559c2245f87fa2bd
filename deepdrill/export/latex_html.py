"""A problem statement's LaTeX as HTML for an LMS: the subset of LaTeX deepdrill's problem
templates write (text commands, tables, lists, centring, display math, TikZ figures),
translated once into HTML with a hole for each formula and figure, which each target fills
in its own way (Moodle's MathJax delimiters, Canvas's equation images, an embedded PNG).
Anything else is refused with a message rather than shown wrong."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deepdrill.errors import DeepdrillError

Math = Callable[[str, bool], str]  # (LaTeX, display) -> HTML
Figure = Callable[[str], str]  # a TikZ picture's LaTeX -> HTML (an <img>, usually)


_TEXT_SYMBOLS = {"#": "#", "%": "%", "&": "&", "_": "_", "$": "$", "{": "{", "}": "}",
                 ",": "\u2009", " ": " ", ";": " ", "-": ""}
_WORD_SYMBOLS = {"textasciitilde": "~", "textasciicircum": "^", "textbackslash": "\\",
                 "textbar": "|", "textless": "<", "textgreater": ">", "ldots": "\u2026",
                 "dots": "\u2026", "quad": "\u2003", "qquad": "\u2003\u2003",
                 "par": "\n\n", "noindent": "", "raggedright": "", "centering": "",
                 "footnotesize": "", "small": "", "scriptsize": "", "normalsize": "",
                 "large": "", "Large": "", "toprule": "", "midrule": "", "bottomrule": "",
                 "hline": "", "medskip": "\n\n", "smallskip": "\n\n", "bigskip": "\n\n"}
_WRAPPERS = {"texttt": ("<code>", "</code>"), "emph": ("<em>", "</em>"),
             "textit": ("<em>", "</em>"), "textbf": ("<strong>", "</strong>"),
             "textrm": ("", ""), "text": ("", ""), "mbox": ("", "")}
_SKIP_ARGS = {"setlength": 2, "renewcommand": 2, "vspace": 1, "hspace": 1, "label": 1}
_MATH = re.compile(r"\\\[(.*?)\\\]|\$\$(.*?)\$\$|\\\((.*?)\\\)|\$((?:\\\$|[^$])*)\$", re.DOTALL)
# Display-math environments, each as the inner environment that works inside \[..\]
_DISPLAY = {"equation": "", "equation*": "", "gather": "gathered", "gather*": "gathered",
            "align": "aligned", "align*": "aligned", "multline*": "gathered"}
_BLOCKS = ("tikzpicture", "center", "flushleft", "tabular", "itemize", "enumerate",
           *(re.escape(name) for name in _DISPLAY))
_ENV = re.compile(r"\\(begin|end)\{(" + "|".join(_BLOCKS) + r")\}")
_RULES = re.compile(r"\\(toprule|midrule|bottomrule|hline)")
_ITEM = re.compile(r"\\item(?![a-zA-Z])(?:\[([^\]]*)\])?")
_COMMAND = re.compile(r"\\([a-zA-Z]+)\*?|\\(.)|(``|''|--|~|[{}&]|\n\s*\n)", re.DOTALL)


def latex_to_html(tex: str, math_html: Math, figure: Figure, dollar: str = "$") -> str:
    """The text-mode LaTeX of a problem template as HTML paragraphs.

    Handles what the templates use; anything else is refused with its name, so a new
    template construct shows up in the tests rather than as raw LaTeX in an LMS.

    >>> latex_to_html(r"Use \\texttt{CONV$k$} and $x^2$.", lambda t, d: f"[{t}]", str)
    '<p>Use <code>CONV[k]</code> and [x^2].</p>'
    """
    return translate(tex, dollar).html(math_html, figure)


HOLE = "\x00"  # where a formula or figure goes in translated text
_COMMENT = re.compile(r"(?<!\\)%[^\n]*")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
Piece = tuple[str, bool] | str  # a formula's (LaTeX, display), or a figure's TikZ source


@dataclass(frozen=True)
class StatementParts:
    """A statement translated to HTML but for its formulas and figures, which each target
    writes its own way: ``pieces[k]`` goes between ``texts[k]`` and ``texts[k + 1]``."""

    texts: tuple[str, ...]
    pieces: tuple[Piece, ...]

    def html(self, math_html: Math, figure: Figure) -> str:
        out = [self.texts[0]]
        for piece, text in zip(self.pieces, self.texts[1:]):
            out.append(math_html(*piece) if isinstance(piece, tuple) else figure(piece))
            out.append(text)
        return _paragraphs("".join(out))


def translate(tex: str, dollar: str = "$", memo: dict[Any, Any] | None = None) -> StatementParts:
    """A problem template's LaTeX as :class:`StatementParts`; ``memo`` carries what was
    translated from one statement to the next (runs of text, table rows)."""
    if HOLE in tex:
        raise DeepdrillError("the problem statement holds a NUL character, which no LMS "
                             "can show")
    translator = _Translator(dollar, {} if memo is None else memo)
    text = translator.blocks(_COMMENT.sub("", tex))
    return StatementParts(tuple(text.split(HOLE)), tuple(translator.pieces))


def _paragraphs(html_text: str) -> str:
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(html_text) if p.strip()]
    return "".join(p if p.startswith(("<div", "<table", "<ul")) else f"<p>{p}</p>"
                   for p in paragraphs)


class _Translator:
    """LaTeX to HTML with a :data:`HOLE` for each formula and figure, recorded in
    ``pieces`` in the order the text shows them. Tables and runs of text repeat across a
    class's statements: each is translated once per ``memo`` (with the pieces it holds).
    A table cell or list item is stripped around its holes as it was around the target's
    formulas, which no target starts or ends with a space."""

    def __init__(self, dollar: str, memo: dict[Any, Any]) -> None:
        self.dollar = dollar
        self.memo = memo.setdefault(("dollar", dollar), {})
        self.pieces: list[Piece] = []

    def math(self, tex: str, display: bool) -> str:
        self.pieces.append((tex, display))
        return HOLE

    def figure(self, tikz: str) -> str:
        self.pieces.append(tikz)
        return HOLE

    def remembered(self, key: Any, translate: Callable[[], str]) -> str:
        known = self.memo.get(key)
        if known is None:
            start = len(self.pieces)
            known = self.memo[key] = (translate(), tuple(self.pieces[start:]))
        else:
            self.pieces.extend(known[1])
        return known[0]

    def blocks(self, tex: str) -> str:
        """Environments (tables, lists, figures, centring) around runs of inline text."""
        out, pos = [], 0
        while True:
            m = _ENV.search(tex, pos)
            if not m:
                out.append(self.inline(tex[pos:]))
                return "".join(out)
            out.append(self.inline(tex[pos:m.start()]))
            kind, name = m.groups()
            if kind == "end":
                raise DeepdrillError(f"unbalanced \\end{{{name}}} in a problem statement")
            body, pos = _environment_body(tex, m.end(), name)
            out.append(self.environment(name, body))

    def environment(self, name: str, body: str) -> str:
        if name == "tikzpicture":
            return "\n\n<div class=\"deepdrill-figure\">" + self.figure(
                f"\\begin{{tikzpicture}}{body}\\end{{tikzpicture}}") + "</div>\n\n"
        if name in ("center", "flushleft", "raggedright"):
            return "\n\n" + self.blocks(body) + "\n\n"
        if name in _DISPLAY:
            inner = _DISPLAY[name]
            body = f"\\begin{{{inner}}}{body.strip()}\\end{{{inner}}}" if inner else body.strip()
            return "\n\n" + self.math(body, True) + "\n\n"
        if name == "tabular":
            return "\n\n" + self.tabular(body) + "\n\n"
        return "\n\n" + self.items(body, name) + "\n\n"  # itemize, enumerate

    def tabular(self, body: str) -> str:
        """A tabular as an HTML table; the rows above its first \\midrule are the header."""
        body = _skip_group(body.lstrip())  # the column spec
        head, rule, rest = body.partition("\\midrule")
        head_rows = _rows(head) if rule else []
        if not head_rows:
            rest = body
        th = "".join(self.row(r, "th") for r in head_rows)
        td = "".join(self.row(r, "td") for r in _rows(rest))
        return (f'<table class="deepdrill-table">{f"<thead>{th}</thead>" if th else ""}'
                f"<tbody>{td}</tbody></table>")

    def row(self, tex: str, tag: str) -> str:
        return self.remembered(("row", tex, tag), lambda: "<tr>" + "".join(
            f"<{tag}>{self.inline(c).strip()}</{tag}>" for c in _split_outside_math(tex, "&"))
            + "</tr>")

    def items(self, body: str, name: str) -> str:
        parts = _ITEM.split(body)
        out = []
        for k in range(1, len(parts), 2):
            label = self.inline(parts[k]) + " " if parts[k] else ""
            out.append(f"<li>{label}{self.inline(parts[k + 1]).strip()}</li>")
        style = ' style="list-style: none"' if any(parts[1::2]) else ""
        tag = "ol" if name == "enumerate" and not style else "ul"
        return f"<{tag}{style}>{''.join(out)}</{tag}>"

    def inline(self, tex: str) -> str:
        return self.remembered(("inline", tex), lambda: self._inline(tex))

    def _inline(self, tex: str) -> str:
        """Text with math; a \\texttt{..} may hold math, so its closing tag waits on
        ``self.closing`` across the math."""
        self.closing: list[str] = []
        out, pos = [], 0
        for m in _MATH.finditer(tex):
            out.append(self.text(tex[pos:m.start()]))
            k = m.lastindex  # the one group that matched: \[..\] or $$..$$ are display math
            out.append(self.math(m.group(k).strip(), k <= 2))
            pos = m.end()
        out.append(self.text(tex[pos:]))
        out.extend(reversed(self.closing))  # an unclosed group: close its tags
        return "".join(out)

    def text(self, tex: str) -> str:
        """Text without math: commands to HTML, everything else escaped. A class's
        statements share most of their text, so each run is translated once (with the
        groups open before it, which its closing braces close)."""
        key = ("text", tex, tuple(self.closing))
        known = self.memo.get(key)
        if known is None:
            known = self.memo[key] = (self._text(tex), tuple(self.closing))
        else:
            self.closing[:] = known[1]
        return known[0]

    def _text(self, tex: str) -> str:
        out, pos, stack = [], 0, self.closing
        while True:
            m = _COMMAND.search(tex, pos)
            chunk = tex[pos:m.start() if m else len(tex)]
            out.append(html.escape(chunk, quote=False))
            if not m:
                break
            pos = m.end()
            word, symbol, other = m.groups()
            if word is not None:
                pos = self.command(word, tex, pos, out, stack)
            elif symbol == "\\":
                out.append("<br>")
            elif symbol is not None:
                if symbol not in _TEXT_SYMBOLS:
                    raise DeepdrillError(f"the problem statement uses \\{symbol}, which the "
                                         f"LMS export cannot show yet")
                out.append(self.dollar if symbol == "$" else
                           html.escape(_TEXT_SYMBOLS[symbol], quote=False))
            elif other == "{":
                stack.append("")
            elif other == "}":
                out.append(stack.pop() if stack else "")
            elif other == "``":
                out.append("\u201c")
            elif other == "''":
                out.append("\u201d")
            elif other == "--":
                out.append("\u2013")
            elif other == "~":
                out.append("\u00a0")
            elif other == "&":
                out.append("&amp;")
            else:
                out.append("\n\n")
        return "".join(out)

    def command(self, word: str, tex: str, pos: int, out: list[str], stack: list[str]) -> int:
        if word in _WORD_SYMBOLS:
            out.append(_WORD_SYMBOLS[word])
            return pos + 2 if tex.startswith("{}", pos) else pos
        if word in _WRAPPERS:
            opening, closing = _WRAPPERS[word]
            rest = tex[pos:].lstrip()
            if not rest.startswith("{"):
                raise DeepdrillError(f"\\{word} without a braced argument in a problem statement")
            pos = len(tex) - len(rest) + 1
            out.append(opening)
            stack.append(closing)
            return pos
        if word in _SKIP_ARGS:  # layout settings: nothing to show
            for _ in range(_SKIP_ARGS[word]):
                pos = len(tex) - len(_skip_group(tex[pos:].lstrip()))
            return pos
        raise DeepdrillError(f"the problem statement uses \\{word}, which the LMS export cannot "
                             f"show yet (deepdrill.export.questions)")


def _rows(tex: str) -> list[str]:
    """A tabular's rows (rules dropped), blank ones left out."""
    return [r for r in _split_outside_math(_RULES.sub("", tex), r"\\\\") if r.strip()]


def _environment_body(tex: str, start: int, name: str) -> tuple[str, int]:
    """The body of an environment opened just before ``start``, and where it ends."""
    depth = 1
    for m in re.finditer(r"\\(begin|end)\{" + re.escape(name) + r"\}", tex[start:]):
        depth += 1 if m.group(1) == "begin" else -1
        if depth == 0:
            return tex[start:start + m.start()], start + m.end()
    raise DeepdrillError(f"\\begin{{{name}}} without its \\end in a problem statement")


def _skip_group(tex: str) -> str:
    """``tex`` after its leading brace group."""
    if not tex.startswith("{"):
        return tex
    depth = 0
    for i, ch in enumerate(tex):
        if ch == "{" and (i == 0 or tex[i - 1] != "\\"):
            depth += 1
        elif ch == "}" and tex[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return tex[i + 1:]
    return ""


def _split_outside_math(tex: str, separator: str) -> list[str]:
    """``tex`` split on a separator (a regex) that is not inside ``$..$`` or braces."""
    parts, start, depth, in_math = [], 0, 0, False
    for m in re.finditer(r"\\\$|\$|\{|\}|" + separator, tex):
        token = m.group()
        if token == "$":
            in_math = not in_math
        elif token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
        elif token != "\\$" and not in_math and depth == 0:
            parts.append(tex[start:m.start()])
            start = m.end()
    parts.append(tex[start:])
    return parts
