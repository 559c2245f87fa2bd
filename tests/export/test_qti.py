"""The Canvas Classic Quizzes zip, held to lms-formats.md 2.2: the manifest Canvas reads
first, one question group per question drawing one variant, numerical answers with the
grader's margin, fill-in blanks that accept only numbers inside the grader's interval."""

from __future__ import annotations

import html
import re
import urllib.parse
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
import lxml.html
from lxml import etree

from deepdrill.cli import cli
from deepdrill.export.qti import accepted_texts, canvas_math, decimals_for, quiz_zip
from deepdrill.export.questions import Entry, ExportSet, export_question
from deepdrill.generator.exercise import make_variant
from deepdrill.grader.batch import load_key
from deepdrill.model.fields import flatten

QTI = "{http://www.imsglobal.org/xsd/ims_qtiasiv1p2}"
CP = "{http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1}"
QUESTION_TYPES = {"calculated_question", "essay_question", "file_upload_question",
                  "fill_in_multiple_blanks_question", "matching_question",
                  "multiple_answers_question", "multiple_choice_question",
                  "multiple_dropdowns_question", "numerical_question", "short_answer_question",
                  "text_only_question", "true_false_question"}


def strict_parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(recover=False, resolve_entities=False,
                                                  no_network=True))


@pytest.fixture(scope="module")
def package(example_build: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("qti") / "quiz.zip"
    result = CliRunner().invoke(cli, ["export", "canvas-quiz", "--key",
                                      str(example_build / "key.json"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return zipfile.ZipFile(out), load_key(example_build / "key.json")


def _metadata(item: etree._Element) -> dict[str, str]:
    return {f.findtext(f"{QTI}fieldlabel"): f.findtext(f"{QTI}fieldentry")
            for f in item.iter(f"{QTI}qtimetadatafield")}


def test_manifest_declares_the_assessment_its_settings_and_every_file(package):
    z, _ = package
    manifest = strict_parse(z.read("imsmanifest.xml"))  # at the zip's root
    assert manifest.tag == f"{CP}manifest" and manifest.get("identifier")
    assert manifest.findtext(f"{CP}metadata/{CP}schema") == "IMS Content"  # not QTIv2.x
    resources = manifest.findall(f"{CP}resources/{CP}resource")
    qti = [r for r in resources if r.get("type") == "imsqti_xmlv1p2"]
    assert len(qti) == 1
    meta_id = qti[0].find(f"{CP}dependency").get("identifierref")
    meta = next(r for r in resources if r.get("identifier") == meta_id)
    assert meta.get("type") == "associatedcontent/imscc_xmlv1p1/learning-application-resource"
    names = set(z.namelist())
    for r in resources:
        for f in r.findall(f"{CP}file"):
            assert f.get("href") in names
    quiz = strict_parse(z.read(meta.get("href")))
    assert quiz.get("identifier") == qti[0].get("identifier")


def _assessment(z: zipfile.ZipFile) -> etree._Element:
    name = next(n for n in z.namelist() if n.endswith(".xml") and "/" in n
                and not n.endswith("assessment_meta.xml"))
    return strict_parse(z.read(name))


def test_a_group_per_question_draws_one_of_its_variants(package):
    z, key = package
    root = _assessment(z)
    assert root.tag == f"{QTI}questestinterop"
    groups = root.findall(f"{QTI}assessment/{QTI}section/{QTI}section")
    assert len(groups) == len(key.questions)
    for g, q in zip(groups, key.questions):
        sel = g.find(f"{QTI}selection_ordering/{QTI}selection")
        assert sel.findtext(f"{QTI}selection_number") == "1"
        assert float(sel.findtext(f"{QTI}selection_extension/{QTI}points_per_item")) == q.points
        items = g.findall(f"{QTI}item")
        assert len(items) == len(key.students)
        assert len({i.get("ident") for i in items}) == len(items)
        for item in items:
            meta = _metadata(item)
            assert meta["question_type"] in QUESTION_TYPES
            assert float(meta["points_possible"]) == q.points
            outcomes = item.find(f"{QTI}resprocessing/{QTI}outcomes/{QTI}decvar")
            assert outcomes.get("varname") == "SCORE" and outcomes.get("maxvalue") == "100"


def test_every_blank_accepts_only_numbers_inside_the_graders_interval(package):
    z, key = package
    root = _assessment(z)
    students = list(key.students.values())
    for g, q in zip(root.findall(f"{QTI}assessment/{QTI}section/{QTI}section"), key.questions):
        for item, s in zip(g.findall(f"{QTI}item"), students):
            variant = s.variants[q.label]
            text = item.findtext(f"{QTI}presentation/{QTI}material/{QTI}mattext")
            blanks = re.findall(r"\[([A-Za-z0-9_]+)\]", text)
            lids = item.findall(f"{QTI}presentation/{QTI}response_lid")
            assert [lid.get("ident") for lid in lids] == [f"response_{b}" for b in blanks]
            entries = [(f, x) for f in variant.fields for x in flatten(variant.answers[f.name])]
            assert len(lids) == len(entries)
            for lid, (f, x) in zip(lids, entries):
                texts = [t.text for t in lid.iter(f"{QTI}mattext")][1:]
                assert texts
                m = max(f.tolerance.atol, f.tolerance.rtol * abs(x)) \
                    if f.tolerance.mode.value == "relabs" else 0.0
                for t in texts:
                    assert abs(float(t) - x) <= m * (1 + 1e-9) + 1e-12, (t, x, m)
            conditions = item.findall(f"{QTI}resprocessing/{QTI}respcondition")
            labels = {lab.get("ident") for lab in item.iter(f"{QTI}response_label")}
            for c in conditions:
                for v in c.iter(f"{QTI}varequal"):
                    assert v.text in labels


def test_a_single_number_is_a_numerical_question_with_the_margin_per_variant():
    variants = []
    for seed in (1, 2, 3):
        v = make_variant("cross_entropy", seed, options={"batch": 2})
        f = v.field("loss")
        variants.append(replace(v, answers={"loss": v.answers["loss"]}, fields=(f,),
                                mistakes=tuple(replace(m, answers={"loss": m.answers["loss"]})
                                               for m in v.mistakes if "loss" in m.answers)))
    qs = tuple(export_question(v, "q1", 3) for v in variants)
    z = zipfile.ZipFile(__import__("io").BytesIO(quiz_zip(ExportSet("T", "", (("q1", 3.0, qs),)))))
    items = _assessment(z).findall(f".//{QTI}item")
    for item, v in zip(items, variants):
        assert _metadata(item)["question_type"] == "numerical_question"
        x, f = v.answers["loss"], v.fields[0]
        m = max(f.tolerance.atol, f.tolerance.rtol * abs(x))
        cond = item.find(f"{QTI}resprocessing/{QTI}respcondition")
        assert cond.get("continue") == "No"
        either = cond.find(f"{QTI}conditionvar/{QTI}or")  # Canvas reads exact answers in an or
        assert float(either.findtext(f"{QTI}varequal")) == pytest.approx(x)
        lo = float(either.findtext(f"{QTI}and/{QTI}vargte"))
        hi = float(either.findtext(f"{QTI}and/{QTI}varlte"))
        assert (hi - x) == pytest.approx(m) and (x - lo) == pytest.approx(m)
        assert "e" not in either.findtext(f"{QTI}and/{QTI}varlte").lower()
        assert cond.findtext(f"{QTI}setvar") == "100"
        if v.mistakes:
            assert item.find(f"{QTI}itemfeedback[@ident='general_incorrect_fb']") is not None


def test_accepted_texts_include_the_correct_rounding_and_nothing_outside():
    e = Entry("p", (0,), 0.7573, False, 0.0076, 1.0)
    texts = accepted_texts(e, 2)
    assert "0.76" in texts and all(abs(float(t) - 0.7573) <= 0.0076 for t in texts)
    big = Entry("y", (0,), 10.0, False, 0.1, 1.0)
    assert len(accepted_texts(big, 3)) <= 2 * 11
    assert accepted_texts(Entry("n", (0,), 2432.0, True, 0.0, 1.0, alternatives=(9.0,)), 0) \
        == ["2432", "9"]


def test_decimals_asked_make_every_correct_rounding_pass():
    q = export_question(make_variant("softmax", 4), "q1", 4)
    d = decimals_for(q.fields[0])
    for e in q.entries:
        assert abs(round(e.value, d) - e.value) <= e.margin


def test_equation_images_carry_the_latex_encoded_twice():
    tex = r"\frac{a}{b} & 50\%"
    img = lxml.html.fragment_fromstring(canvas_math(tex, False))
    assert img.get("class") == "equation_image"
    path = img.get("src").removeprefix("/equation_images/")
    assert urllib.parse.unquote(urllib.parse.unquote(path)) == tex
    assert img.get("data-equation-content") == tex and img.get("alt") == f"LaTeX: {tex}"
    assert html.unescape(canvas_math("<", True)).count("<") >= 2
