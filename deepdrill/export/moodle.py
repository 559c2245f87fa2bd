"""`deepdrill export moodle`: a key's variants as a Moodle XML question bank.

One category per question of the assignment holds its variants (one per student, or the
first N), so a quiz slot "random question from category" gives every attempt one of
them. A variant with a single number is a ``numerical`` question; any other is a
``cloze`` (multianswer) question with one ``NUMERICAL`` blank per entry, laid out like
the field (a table for a matrix). Every blank accepts exactly the grader's interval
(``lms-formats.md`` section 0), then lists each recognised mistake's value at 0 % with
its feedback: Moodle takes the first answer whose interval holds the response, so the
right answer comes first. Figures are embedded as PNG files (``@@PLUGINFILE@@``).

Format facts: ``lms-formats.md`` section 3 (from Moodle's ``question/format/xml/format.php``
and ``question/type/multianswer/questiontype.php``).
"""

from __future__ import annotations

import base64
import functools
import html
from pathlib import Path

import click
from lxml import etree

from deepdrill.files import write_out
from deepdrill.heap import no_gc_pauses

from .commands import export
from .questions import (Entry, ExportQuestion, ExportSet, Figures, Statements,
                        decimal_text, field_heading, integer_weights, layout, load_export,
                        variant_label)

PENALTY = "0.3333333"  # Moodle's default penalty per wrong try (adaptive mode)
CORRECT = "Correct."


def moodle_math(tex: str, display: bool) -> str:
    """MathJax delimiters Moodle's filter reads; HTML-escaped so ``&`` and ``<`` survive."""
    body = html.escape(tex, quote=False)
    return f"\\[{body}\\]" if display else f"\\({body}\\)"


def category_path(*parts: str) -> str:
    """A category path under ``top`` in the course; a ``/`` inside a name is doubled, as
    Moodle splits the path on single slashes."""
    return "$course$/top/" + "/".join(p.replace("/", "//") for p in parts)


@no_gc_pauses()
def bank_xml(export_set: ExportSet) -> bytes:
    """The whole question bank as UTF-8 XML bytes."""
    figures = Figures()
    statements = Statements(moodle_math)
    quiz = etree.Element("quiz")
    needs_files: list[tuple[etree._Element, list[str]]] = []
    for label, points, variants in export_set.questions:
        title = variants[0].title if variants else label
        _category(quiz, category_path(export_set.title or "deepdrill", f"{label} {title}"),
                  f"{export_set.title}, {label}: {len(variants)} variant(s) of {title}, "
                  f"{points:g} points. Put one "
                  f"random question from this category in the quiz and give its slot "
                  f"{points:g} marks.")
        for i, q in enumerate(variants):
            name = f"{label} {variant_label(i, len(variants))}: {title}"
            files: list[str] = []

            def figure(tikz: str, files: list[str] = files) -> str:
                file = figures.name(tikz)
                files.append(file)
                return f'<img src="@@PLUGINFILE@@/{file}" alt="figure">'

            element = _question(quiz, q, name, f"{label}-{variant_label(i, len(variants))}",
                                statements.html(q, figure))
            if files:
                needs_files.append((element.find("questiontext"), files))
    images = figures.compile()
    for questiontext, files in needs_files:
        for file in dict.fromkeys(files):
            f = etree.SubElement(questiontext, "file", name=file, path="/", encoding="base64")
            f.text = base64.b64encode(images[file]).decode("ascii")
    return etree.tostring(quiz, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _category(quiz: etree._Element, path: str, info: str) -> None:
    c = etree.SubElement(quiz, "question", type="category")
    _text(etree.SubElement(c, "category"), path)
    _text(etree.SubElement(c, "info", format="html"), html.escape(info), cdata=True)


def _question(quiz: etree._Element, q: ExportQuestion, name: str, idnumber: str,
              statement: str) -> etree._Element:
    kind = "numerical" if q.single else "cloze"
    el = etree.SubElement(quiz, "question", type=kind)
    _text(etree.SubElement(el, "name"), name)
    if q.single:
        text = statement + f"<p>{field_heading(q.fields[0])}</p>"
    else:
        text = statement + _cloze_body(q)
    _text(etree.SubElement(el, "questiontext", format="html"), text, cdata=True)
    _text(etree.SubElement(el, "generalfeedback", format="html"),
          f"<p>deepdrill {html.escape(q.variant.type)}, seed {q.variant.seed}.</p>", cdata=True)
    if q.single:
        etree.SubElement(el, "defaultgrade").text = decimal_text(q.points)
    etree.SubElement(el, "penalty").text = PENALTY
    etree.SubElement(el, "hidden").text = "0"
    etree.SubElement(el, "idnumber").text = idnumber
    if q.single:
        _numerical_answers(el, q.entries[0])
    return el


def _numerical_answers(el: etree._Element, e: Entry) -> None:
    """The right interval first (and a blank's other accepted values), then each mistake
    at 0 %: Moodle takes the first answer whose interval holds the response."""
    for value in (e.value, *e.alternatives):
        _answer(el, "100", value, e.margin, CORRECT)
    for w in e.mistakes:
        _answer(el, "0", w.value, w.margin, w.feedback)
    for tag, value in (("unitgradingtype", "0"), ("unitpenalty", "0.1"), ("showunits", "3"),
                       ("unitsleft", "0")):
        etree.SubElement(el, tag).text = value


def _answer(el: etree._Element, fraction: str, value: float, margin: float,
            feedback: str) -> None:
    a = etree.SubElement(el, "answer", fraction=fraction, format="moodle_auto_format")
    etree.SubElement(a, "text").text = decimal_text(value)
    etree.SubElement(a, "tolerance").text = decimal_text(margin)
    _text(etree.SubElement(a, "feedback", format="html"), html.escape(feedback), cdata=True)


def _cloze_body(q: ExportQuestion) -> str:
    """Each field's heading and its blanks; each blank's weight is its share of the
    points in whole numbers (the question's mark is their sum; the quiz slot scales it)."""
    entries = q.entries
    weights = dict(zip(map(id, entries), integer_weights([e.share for e in entries])))
    return "".join(f"<p>{field_heading(fb)}</p>" +
                   layout(fb, lambda e: cloze_numerical(e, weights[id(e)]))
                   for fb in q.fields)


def cloze_numerical(e: Entry, weight: int) -> str:
    """``{w:NUMERICAL:=x:m#Correct.~%0%y:n#feedback~...}`` for one entry.

    >>> from deepdrill.export.questions import Entry
    >>> cloze_numerical(Entry("y", (0,), 0.5, False, 0.005, 1.0), 2)
    '{2:NUMERICAL:=0.5:0.005#Correct.}'
    """
    alternatives = [f"={decimal_text(v)}:{decimal_text(e.margin)}#{CORRECT}"
                    for v in (e.value, *e.alternatives)]
    alternatives += [f"%0%{decimal_text(w.value)}:{decimal_text(w.margin)}#{_cloze_text(w.feedback)}"
                     for w in e.mistakes]
    return f"{{{weight}:NUMERICAL:{'~'.join(alternatives)}}}"


@functools.lru_cache(maxsize=4096)  # a type's few feedback texts, met at every entry
def _cloze_text(text: str) -> str:
    """Feedback inside a cloze field: HTML-escaped, and the characters that end an
    alternative or a field (``~ } #``, and ``{``) written as character references."""
    escaped = html.escape(text, quote=False)
    return escaped.translate({ord("{"): "&#123;", ord("}"): "&#125;", ord("~"): "&#126;",
                              ord("#"): "&#35;"})


def _text(parent: etree._Element, text: str, cdata: bool = False) -> None:
    """A ``<text>`` child; HTML goes in CDATA, as Moodle's own exporter writes it (text
    that holds ``]]>`` itself is written escaped instead, which Moodle reads the same)."""
    t = etree.SubElement(parent, "text")
    t.text = etree.CDATA(text) if cdata and "]]>" not in text else text


def write_bank(key_path: Path, out: Path, variants: int | None = None) -> ExportSet:
    """The bank of a key's variants (the first ``variants`` students', or all) in ``out``."""
    export_set = load_export(key_path, variants)
    write_out(out, bank_xml(export_set))
    return export_set


@export.command("moodle")
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="The key.json that `deepdrill build` wrote.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The question bank to write, e.g. bank.xml.")
@click.option("--variants", type=int, default=None,
              help="Export only the first N students' variants (default: every student's).")
def moodle_command(key_path: Path, out: Path, variants: int | None) -> None:
    """Write a Moodle XML question bank: a category per question holding its variants.

    Import it in Moodle under Question bank > Import > Moodle XML format, with "Get
    category from file" ticked; then add one random question from each category to the
    quiz, with the question's points as the slot's marks.
    """
    export_set = write_bank(key_path, out, variants)
    for note in export_set.notes:
        click.echo(f"note: {note}", err=True)
    n = sum(len(v) for _, _, v in export_set.questions)
    click.echo(f"wrote {out}: {len(export_set.questions)} categories, {n} questions")
