"""`deepdrill export canvas-quiz`: a key's variants as a Canvas Classic Quizzes QTI 1.2 zip.

Each question of the assignment becomes a question group that draws one of its items,
one item per stored variant. A variant with a single number is a ``numerical_question``
whose answer is the key with the grader's own margin (exact + margin,
``lms-formats.md`` 2.2.5 and section 0). Canvas Classic has no question with several
numeric boxes, and a group cannot keep one variant's entries together across items, so a
variant with several numbers is one ``fill_in_multiple_blanks_question`` with a blank per
entry (laid out like the field): Canvas compares a blank's text, so each blank lists the
texts it accepts, the whole numbers of an integer field, and for a real field the values
at the number of decimals the question asks for that lie inside the grader's interval
(never one outside it). Canvas gives every accepted answer full marks, so the recognised
mistakes are named in the feedback for a wrong answer rather than as answers.

Math is written as Canvas equation images (``/equation_images/<LaTeX>``, the LaTeX also
in ``alt`` and ``data-equation-content``), which render whether or not the site typesets
``\\(..\\)``; figures go in ``images/`` as PNG, declared in the manifest.
"""

from __future__ import annotations

import functools
import html
import io
import math
import re
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any

import click
from lxml import etree

from deepdrill.files import write_out
from deepdrill.heap import no_gc_pauses

from .commands import export
from .questions import (Entry, ExportQuestion, ExportSet, FieldBlanks, Figures, Statements,
                        decimal_text, field_heading, layout, load_export, variant_label)

QTI_NS = "http://www.imsglobal.org/xsd/ims_qtiasiv1p2"
CP_NS = "http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1"
IMSMD_NS = "http://www.imsglobal.org/xsd/imsmd_v1p2"
CANVAS_NS = "http://canvas.instructure.com/xsd/cccv1p0"
MAX_DECIMALS = 6  # a real blank never asks for more decimals than this
SPREAD = 5  # accepted texts per real blank: at most this many last-digit units either side
FIGURE_BASE = "%24IMS-CC-FILEBASE%24/images/"  # $IMS-CC-FILEBASE$, escaped as Canvas writes it
ZIP_LEVEL = 1  # deflate level: a class's assessment is ~130 kB per student, mostly blanks'
# lists of accepted numbers; level 1 compresses it three times faster than the default 6,
# to a zip half as large again


@functools.lru_cache(maxsize=4096)  # the formulas of a type's fixed text, in every variant
def canvas_math(tex: str, display: bool) -> str:
    """A Canvas equation image: the LaTeX URL-encoded twice in the path (as Canvas's own
    editor writes it) and kept in ``alt`` and ``data-equation-content``."""
    src = "/equation_images/" + urllib.parse.quote(urllib.parse.quote(tex, safe=""), safe="")
    attr = html.escape(tex, quote=True)
    img = (f'<img class="equation_image" title="{attr}" src="{src}" alt="LaTeX: {attr}" '
           f'data-equation-content="{attr}">')
    return f'<p style="text-align: center">{img}</p>' if display else img


# -- accepted texts of a fill-in blank ---------------------------------------------------

def decimals_for(fb: FieldBlanks) -> int:
    """The decimals a real field's entries are asked to: enough that every entry's correct
    rounding lies inside its interval (half a unit of the last decimal <= margin)."""
    need = [math.ceil(math.log10(0.5 / e.margin) - 1e-9) for e in fb.entries if e.margin > 0]
    return min(MAX_DECIMALS, max([0, *need]))


def accepted_texts(e: Entry, decimals: int) -> list[str]:
    """What a blank accepts: the integer (or a blank's other accepted integers), or every
    number with ``decimals`` decimals inside the grader's interval (the closest first),
    each also without trailing zeros.

    >>> accepted_texts(Entry("p", (0,), 0.7573, False, 0.0076, 1.0), 2)
    ['0.76', '0.75']
    """
    if e.integer:
        return [decimal_text(v) for v in (e.value, *e.alternatives)]
    texts: list[str] = []
    unit = 10.0 ** -decimals
    for x in (e.value, *e.alternatives) if e.alternatives else (e.value,):
        lo = math.ceil(round((x - e.margin) / unit, 6))
        hi = math.floor(round((x + e.margin) / unit, 6))
        units = x / unit
        centre = round(units)
        # closest first; a sort is stable, so of two as close the smaller comes first
        ks = sorted(range(max(lo, centre - SPREAD), min(hi, centre + SPREAD) + 1),
                    key=lambda k: abs(k - units))
        for k in ks or [centre]:
            texts += _spellings(k, decimals)
    return list(dict.fromkeys(texts))


@functools.lru_cache(maxsize=65536)
def _spellings(k: int, decimals: int) -> list[str]:
    text = f"{k / 10 ** decimals:.{decimals}f}" if decimals else str(k)
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    out = [text]
    if "." in text:
        out.append(text.rstrip("0").rstrip("."))
    return list(dict.fromkeys(out))


def blank_id(e: Entry) -> str:
    """A blank's name in the question text, ``[output_1_2]``: ASCII letters, digits and
    underscores, which Canvas reads as a blank."""
    return _blank_name(e.field, e.index)


@functools.lru_cache(maxsize=65536)  # every variant has the same blanks
def _blank_name(field: str, index: tuple[int, ...]) -> str:
    return "_".join([field, *(str(i + 1) for i in index)])


# -- the assessment ---------------------------------------------------------------------
#
# Written as text, element by element as lxml writes it (a class's assessment holds
# millions of elements, which lxml builds one by one slowly): names and numbers as they
# are, everything else through _text or _attr.

def _text(text: str) -> str:
    """Element content escaped as lxml escapes it."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def _attr(value: str) -> str:
    """An attribute value (in double quotes) escaped as lxml escapes it."""
    return (_text(value).replace('"', "&quot;").replace("\n", "&#10;")
            .replace("\t", "&#9;"))


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _outside(text: str) -> str:
    """Text from the assignment file, refused if XML cannot hold it (as lxml refuses it)."""
    if _NOT_XML.search(text):
        raise ValueError(f"{text!r} holds a control character, which XML cannot hold")
    return text


class _Builder:
    def __init__(self, export_set: ExportSet, ident: str) -> None:
        self.set, self.ident, self.figures = export_set, ident, Figures()
        self.statements = Statements(canvas_math)
        # a blank's accepted texts by (key, margin, other values, decimals): a class's
        # keys repeat (a convolution of whole numbers, probabilities such as 0.5)
        self.accepted: dict[tuple[Any, ...], list[str]] = {}
        self.written: dict[tuple[Any, ...], tuple[str, str]] = {}  # a blank's, by name too
        # a field's heading and blanks, and a question's feedback on mistakes, by what
        # they show: the same in every variant of a question, but for a note or a decimal
        self.fields: dict[tuple[Any, ...], str] = {}
        self.feedback: dict[tuple[tuple[str, str], ...], tuple[str, str]] = {}

    def figure(self, tikz: str) -> str:
        return f'<img src="{FIGURE_BASE}{self.figures.name(tikz)}" alt="figure">'

    def assessment(self) -> bytes:
        ident = _attr(_outside(self.ident))
        title = _attr(_outside(self.set.title or "deepdrill"))
        out = [(f"<?xml version='1.0' encoding='UTF-8'?>\n<questestinterop xmlns=\"{QTI_NS}\">"
                f'<assessment ident="{ident}" title="{title}">'
                f'{_metadata({"cc_maxattempts": "1"})}<section ident="root_section">')]
        for label, points, variants in self.set.questions:
            title = variants[0].title if variants else label
            out.append(f'<section ident="{_attr(_outside(f"{self.ident}_{label}"))}" '
                       f'title="{_attr(_outside(f"{label} {title}"))}"><selection_ordering>'
                       f"<selection><selection_number>1</selection_number><selection_extension>"
                       f"<points_per_item>{decimal_text(points)}</points_per_item>"
                       f"</selection_extension></selection></selection_ordering>")
            for i, q in enumerate(variants):
                v = variant_label(i, len(variants))
                out += self.item(q, _attr(f"{self.ident}_{label}_{v}"), _attr(f"{label} {v}"))
            out.append("</section>")
        out.append("</section></assessment></questestinterop>")
        # encoded part by part: the blanks' long ASCII parts stay one byte a character
        # rather than widened to the statements' (thin spaces, dashes) when joined first
        return b"".join(map(str.encode, out))

    def item(self, q: ExportQuestion, ident: str, title: str) -> list[str]:
        """One variant's item, in parts (``ident`` and ``title`` escaped already)."""
        kind = "numerical_question" if q.single else "fill_in_multiple_blanks_question"
        meta = _metadata({"question_type": kind, "points_possible": decimal_text(q.points)})
        text = self.statements.html(q, self.figure)
        if q.single:
            text += f"<p>{field_heading(q.fields[0])}</p>"
            responses, conditions = _numerical(q.entries[0])
        else:  # Canvas reads [name] as a blank: the text's own brackets are escaped
            text = _no_brackets(text) + "".join(self.blank_field(fb) for fb in q.fields)
            responses, conditions = _blanks(q, self.accepted, self.written)
        feedback_condition, feedback = self.mistake_feedback(q)
        return [f'<item ident="{ident}" title="{title}"><itemmetadata>{meta}</itemmetadata>'
                f"<presentation>{_mattext(text)}", responses,
                '</presentation><resprocessing><outcomes><decvar maxvalue="100" minvalue="0" '
                'varname="SCORE" vartype="Decimal"/></outcomes>', conditions,
                f"{feedback_condition}</resprocessing>{feedback}</item>"]

    def blank_field(self, fb: FieldBlanks) -> str:
        """A field's heading and its blanks, which name the entries, not their values."""
        f = fb.field
        d = None if fb.entries[0].integer else decimals_for(fb)
        key = (f.name, f.label, repr(f.shape), fb.note, d)
        known = self.fields.get(key)
        if known is None:
            note = f" Give each number to {d} decimal place{'s' if d != 1 else ''}." \
                if d is not None else ""
            known = self.fields[key] = (f"<p>{_no_brackets(field_heading(fb))}{note}</p>" +
                                        layout(fb, lambda e: f"[{blank_id(e)}]"))
        return known

    def mistake_feedback(self, q: ExportQuestion) -> tuple[str, str]:
        """The recognised mistakes, named in the feedback shown after a wrong answer: the
        condition showing it, and the feedback ("", "" when there are none); written once
        per list of mistakes named."""
        seen = _mistakes_named(q)
        key = tuple(seen.items())
        known = self.feedback.get(key)
        if known is None:
            known = self.feedback[key] = _feedback(seen)
        return known


def _no_brackets(text: str) -> str:
    """HTML whose square brackets are character references (in text and attributes
    alike), so only the blanks read as ``[name]``."""
    return text.replace("[", "&#91;").replace("]", "&#93;")


def _numerical(e: Entry) -> tuple[str, str]:
    """One exact answer with the grader's margin (the ``or`` wrapper is what Canvas reads
    exact answers from; ``vargte`` marks a margin, not a precision): the response and its
    conditions."""
    response = ('<response_str ident="response1" rcardinality="Single"><render_fib '
                'fibtype="Decimal"><response_label ident="answer1"/></render_fib></response_str>')
    conditions = "".join(
        f'<respcondition continue="No"><conditionvar><or><varequal respident="response1">'
        f'{decimal_text(value)}</varequal><and><vargte respident="response1">'
        f'{decimal_text(value - e.margin)}</vargte><varlte respident="response1">'
        f'{decimal_text(value + e.margin)}</varlte></and></or></conditionvar>'
        f'<setvar action="Set" varname="SCORE">100</setvar></respcondition>'
        for value in (e.value, *e.alternatives))
    return response, conditions


def _blanks(q: ExportQuestion, accepted: dict[tuple[Any, ...], list[str]],
            written: dict[tuple[Any, ...], tuple[str, str]]) -> tuple[str, str]:
    """A ``response_lid`` per blank listing the texts it accepts (remembered in
    ``accepted``), and a condition per blank (any of them) adding its equal share of 100:
    Canvas weighs a question's blanks equally. A blank's two parts are remembered in
    ``written``: most of a class's blanks repeat one before them (a shape, a count)."""
    share = decimal_text(round(100 / len(q.entries), 4))
    lids, conditions = [], []
    for fb in q.fields:
        d = 0 if fb.entries[0].integer else decimals_for(fb)
        for e in fb.entries:
            name = blank_id(e)
            key = (e.value, e.margin, e.alternatives, e.integer, d)
            parts = written.get((name, share, key))
            if parts is None:
                texts = accepted.get(key)
                if texts is None:
                    texts = accepted[key] = accepted_texts(e, d)
                parts = written[name, share, key] = (
                    _choices(name, len(texts)).format(*texts), _any_of(name, len(texts), share))
            lids.append(parts[0])
            conditions.append(parts[1])
    return "".join(lids), "".join(conditions)


@functools.lru_cache(maxsize=4096)  # blank names and counts repeat in every variant
def _choices(name: str, n: int) -> str:
    """A blank's ``response_lid`` with ``n`` choices, each text a ``{}`` to format in
    (a name holds no braces: ASCII letters, digits and underscores)."""
    labels = "".join(f'<response_label ident="{name}_a{k + 1}"><material><mattext '
                     f'texttype="text/plain">{{}}</mattext></material></response_label>'
                     for k in range(n))
    return (f'<response_lid ident="response_{name}"><material><mattext '
            f'texttype="text/plain">{name}</mattext></material>'
            f"<render_choice>{labels}</render_choice></response_lid>")


@functools.lru_cache(maxsize=4096)
def _any_of(name: str, n: int, share: str) -> str:
    """The condition adding ``share`` when any of a blank's ``n`` choices is picked."""
    equal = "".join(f'<varequal respident="response_{name}">{name}_a{k + 1}</varequal>'
                    for k in range(n))
    return (f"<respcondition><conditionvar><or>{equal}</or></conditionvar>"
            f'<setvar varname="SCORE" action="Add">{share}</setvar></respcondition>')


def _mistakes_named(q: ExportQuestion) -> dict[str, str]:
    """The feedback of each mistake some entry names, in the order the entries name them
    (the walk stops once every mistake of the variant is named)."""
    seen: dict[str, str] = {}
    every = len(q.variant.mistakes)
    for fb in q.fields:
        for e in fb.entries:
            for w in e.mistakes:
                seen.setdefault(w.name, w.feedback)
            if len(seen) == every:
                return seen
    return seen


def _feedback(seen: dict[str, str]) -> tuple[str, str]:
    """:meth:`_Builder.mistake_feedback` of the mistakes named."""
    if not seen:
        return "", ""
    items = "".join(f"<li>{html.escape(f)}</li>" for f in seen.values())
    return (('<respcondition continue="Yes"><conditionvar><other/></conditionvar>'
             '<displayfeedback feedbacktype="Response" linkrefid="general_incorrect_fb"/>'
             '</respcondition>'),
            '<itemfeedback ident="general_incorrect_fb"><flow_mat>' +
            _mattext(f"<p>Not right yet. Typical slips here:</p><ul>{items}</ul>") +
            "</flow_mat></itemfeedback>")


def _mattext(text: str) -> str:
    return f'<material><mattext texttype="text/html">{_text(text)}</mattext></material>'


def _metadata(fields: dict[str, str]) -> str:
    return "<qtimetadata>" + "".join(
        f"<qtimetadatafield><fieldlabel>{label}</fieldlabel><fieldentry>{_text(entry)}"
        f"</fieldentry></qtimetadatafield>" for label, entry in fields.items()) + \
        "</qtimetadata>"


def _sub(parent: etree._Element, tag: str, **attrib: str) -> etree._Element:
    """A child in its parent's namespace (read from the parent's tag: lxml's nsmap is
    slow)."""
    t = parent.tag
    return etree.SubElement(parent, t[:t.index("}") + 1] + tag if t[0] == "{" else tag, attrib)


# -- the package ----------------------------------------------------------------------

def manifest(ident: str, title: str, images: list[str]) -> etree._Element:
    root = etree.Element(f"{{{CP_NS}}}manifest", nsmap={None: CP_NS, "imsmd": IMSMD_NS},
                         identifier=f"{ident}_manifest")
    meta = _sub(root, "metadata")
    _sub(meta, "schema").text = "IMS Content"
    _sub(meta, "schemaversion").text = "1.1.3"
    lom = etree.SubElement(meta, f"{{{IMSMD_NS}}}lom")
    general = etree.SubElement(lom, f"{{{IMSMD_NS}}}general")
    etree.SubElement(etree.SubElement(general, f"{{{IMSMD_NS}}}title"),
                     f"{{{IMSMD_NS}}}string").text = title
    _sub(root, "organizations")
    resources = _sub(root, "resources")
    res = _sub(resources, "resource", identifier=ident, type="imsqti_xmlv1p2")
    _sub(res, "file", href=f"{ident}/{ident}.xml")
    _sub(res, "dependency", identifierref=f"{ident}_meta")
    meta_res = _sub(resources, "resource", identifier=f"{ident}_meta",
                    type="associatedcontent/imscc_xmlv1p1/learning-application-resource",
                    href=f"{ident}/assessment_meta.xml")
    _sub(meta_res, "file", href=f"{ident}/assessment_meta.xml")
    for k, name in enumerate(images):
        r = _sub(resources, "resource", identifier=f"{ident}_img{k + 1}", type="webcontent",
                 href=f"images/{name}")
        _sub(r, "file", href=f"images/{name}")
    return root


def assessment_meta(ident: str, title: str, points: float) -> etree._Element:
    root = etree.Element(f"{{{CANVAS_NS}}}quiz", nsmap={None: CANVAS_NS}, identifier=ident)
    settings = {"title": title, "description": "", "quiz_type": "assignment",
                "points_possible": decimal_text(points), "allowed_attempts": "1",
                "shuffle_answers": "false", "scoring_policy": "keep_highest",
                "show_correct_answers": "false", "one_question_at_a_time": "false",
                "cant_go_back": "false", "available": "false"}
    for tag, value in settings.items():
        _sub(root, tag).text = value
    a = _sub(root, "assignment", identifier=f"{ident}_assignment")
    for tag, value in {"title": title, "points_possible": decimal_text(points),
                       "grading_type": "points", "submission_types": "online_quiz",
                       "workflow_state": "unpublished", "quiz_identifierref": ident}.items():
        _sub(a, tag).text = value
    return root


@no_gc_pauses()
def quiz_zip(export_set: ExportSet, ident: str = "deepdrill_quiz") -> bytes:
    """The whole Classic Quizzes package as zip bytes."""
    b = _Builder(export_set, ident)
    assessment = b.assessment()
    images = b.figures.compile()
    title = export_set.title or "deepdrill"
    points = sum(p for _, p, _ in export_set.questions)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as z:
        z.writestr("imsmanifest.xml", _xml(manifest(ident, title, list(images))))
        z.writestr(f"{ident}/{ident}.xml", assessment)
        z.writestr(f"{ident}/assessment_meta.xml", _xml(assessment_meta(ident, title, points)))
        for name, data in images.items():
            z.writestr(f"images/{name}", data)
    return buf.getvalue()


def _xml(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def write_quiz(key_path: Path, out: Path, variants: int | None = None) -> ExportSet:
    """The QTI zip of a key's variants (the first ``variants`` students', or all) in ``out``."""
    export_set = load_export(key_path, variants)
    write_out(out, quiz_zip(export_set))
    return export_set


@export.command("canvas-quiz")
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="The key.json that `deepdrill build` wrote.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The QTI zip to write, e.g. quiz.zip.")
@click.option("--variants", type=int, default=None,
              help="Export only the first N students' variants (default: every student's).")
def canvas_quiz_command(key_path: Path, out: Path, variants: int | None) -> None:
    """Write a Canvas Classic Quizzes QTI 1.2 zip: a question group per question, drawing
    one of its variants.

    Import it in Canvas under Settings > Import Course Content > "QTI .zip file".
    """
    export_set = write_quiz(key_path, out, variants)
    for note in export_set.notes:
        click.echo(f"note: {note}", err=True)
    n = sum(len(v) for _, _, v in export_set.questions)
    click.echo(f"wrote {out}: {len(export_set.questions)} question groups, {n} items")
