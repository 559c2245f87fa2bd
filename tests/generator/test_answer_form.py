"""The offline answer form: shaped like the answers, nothing of the key inside, and, in a real
headless Chromium, filled, checked as typed, saved, reopened and graded to full marks.

The browser tests need Debian's ``chromium`` and ``chromium-driver`` and the ``selenium``
package; without them they are skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from deepdrill.generator.answer_form import answer_form, layout
from deepdrill.generator.assignment import Student, load_assignment, parse_assignment
from deepdrill.generator.build import (StudentBuild, blank_submission, key_bytes, make_variants,
                                       readable_json)
from deepdrill.grader.batch import grade_submission, load_key
from deepdrill.grader.numbers import NotANumber, parse_integer, parse_number
from deepdrill.grader.score import grade_question
from deepdrill.grader.submission import read_submission
from deepdrill.model.fields import flatten, skeleton

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "Zoë </script><script>window.__pwned__ = 1</script> & \"O'Brien\""
DOWNLOAD_WAIT = 15.0  # seconds for a saved file to appear


@pytest.fixture(scope="module")
def assignment():
    return load_assignment(ROOT / "examples" / "assignment.toml")


@pytest.fixture(scope="module")
def student_build(assignment) -> StudentBuild:
    return make_variants(assignment, [Student("s042", "Ada Lovelace")])[0]


def embedded(html: str) -> dict[str, Any]:
    """The form's data, as the page's script reads it."""
    m = re.search(r'<script type="application/json" id="form-data">(.*?)</script>', html, re.DOTALL)
    assert m, "the form's data block is missing"
    return json.loads(m.group(1))


# -- the page, without a browser -------------------------------------------------------

def boxes(node: dict[str, Any]) -> list[dict[str, Any]]:
    if node["kind"] == "box":
        return [node["box"]]
    if node["kind"] == "row":
        return node["boxes"]
    if node["kind"] == "grid":
        return [b for row in node["rows"] for b in row]
    return [b for child in node["children"] for b in boxes(child["node"])]


@pytest.mark.parametrize("shape, kind", [
    ([], "box"), ([4], "row"), ([2, 3], "grid"), ([2, 3, 3], "stack"),
    ([[3], [3], [1]], "stack"), ([[2, 2], [1, 2]], "stack"),
])
def test_inputs_are_shaped_like_the_answer(shape, kind):
    node = layout(shape, "a-q1-x", ())
    assert node["kind"] == kind
    paths = [b["path"] for b in boxes(node)]
    # one box per number, in the order the grader flattens a value (row-major)
    value = skeleton(shape)
    assert len(paths) == len(flatten(value))
    for i, path in enumerate(paths):
        leaf: Any = value
        for p in path[:-1]:
            leaf = leaf[p]
        if path:
            leaf[path[-1]] = i
        else:
            value = i
    assert flatten(value) == list(range(len(paths)))
    assert len({b["id"] for b in boxes(node)}) == len(paths)


def test_per_layer_lists_are_one_line_per_layer_and_maps_one_block_per_channel():
    table = layout([[3], [3], [1]], "a-q1-output_shapes", ())
    assert [c["caption"] for c in table["children"]] == ["layer 1", "layer 2", "layer 3"]
    assert [c["node"]["kind"] for c in table["children"]] == ["row", "row", "row"]
    maps = layout([2, 3, 3], "a-q2-output", ())
    assert [c["caption"] for c in maps["children"]] == ["channel 1", "channel 2"]
    assert maps["children"][1]["node"]["rows"][2][0]["where"] == "channel 2, row 3, column 1"


def test_the_form_saves_what_blank_submission_lays_out(assignment, student_build):
    data = embedded(answer_form(assignment, student_build))
    blank = blank_submission(assignment, student_build)
    assert data["blank"] == blank
    assert json.dumps(data["blank"]) == json.dumps(blank), "keys must keep their order"
    assert data["file_name"] == f"{student_build.folder}.json"


def test_the_form_holds_nothing_of_the_key(assignment, student_build):
    html = answer_form(assignment, student_build)
    variants = student_build.variants.values()
    for v in variants:  # every answer (and every mistake's) that text could give away
        for value in [*(flatten(a) for a in v.answers.values()),
                      *(flatten(a) for m in v.mistakes for a in m.answers.values())]:
            for x in value:
                for text in spellings(x):
                    assert not re.search(rf"(?<![\w.]){re.escape(text)}(?![\w.])", html), \
                        f"{v.type}: the answer {x!r} appears in the form as {text!r}"
    # and nothing else of the variants: other answers, parameters, seeds and mistakes
    # give the same page
    scrambled = dataclasses.replace(student_build, seed=1, variants={
        label: dataclasses.replace(v, seed=7, params={}, mistakes=(),
                                   answers={k: scramble(a) for k, a in v.answers.items()})
        for label, v in student_build.variants.items()})
    assert answer_form(assignment, scrambled) == html


def spellings(x: float) -> set[str]:
    """How an answer could be written, skipping numbers too plain to tell apart from a
    shape, an index or a point count."""
    if float(x).is_integer() and abs(x) < 1000:
        return set()
    out = {repr(x), json.dumps(x), f"{x:.4g}", f"{x:.6g}"}
    if not float(x).is_integer():
        out.add(f"{x:.3f}")
    return {t for t in out if len(t.lstrip("-").replace(".", "").lstrip("0")) >= 3}


def scramble(value: Any) -> Any:
    return [scramble(v) for v in value] if isinstance(value, list) else 123456.789


def test_names_ids_and_titles_are_escaped(student_build):
    a = parse_assignment({"title": "<b>Set</b> & \"3\"", "seed": 3,
                          "questions": [{"type": "softmax", "points": 2}]})
    b = make_variants(a, [Student("<i>id</i>'1", HOSTILE)])[0]
    html = answer_form(a, b)
    assert "<script>window" not in html and "<b>Set" not in html and "<i>id" not in html
    assert html.count("</script>") == 2  # the data block and the script, nothing injected
    data = embedded(html)
    assert data["blank"]["name"] == HOSTILE and data["blank"]["student_id"] == "<i>id</i>'1"


def test_the_page_loads_nothing_from_anywhere(assignment, student_build):
    html = answer_form(assignment, student_build)
    assert not re.search(r"https?://|<link|<img|<iframe|\ssrc=|@import|url\(", html)
    assert "default-src 'none'" in html  # the page may not fetch even if asked to


# -- in the browser ---------------------------------------------------------------------

CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--window-size=1100,900")


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module, driven through chromedriver."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="deepdrill-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    offline = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for drivers online
    try:
        chrome = webdriver.Chrome(options=options, service=Service(driver))
    finally:
        os.environ.pop("SE_OFFLINE") if offline is None else os.environ.update(SE_OFFLINE=offline)
    try:
        yield chrome
    finally:
        chrome.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclasses.dataclass
class Page:
    """A student's form open in the browser, saving into its own folder."""

    driver: Any
    downloads: Path
    file_name: str

    def entry(self, element_id: str) -> Any:
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.ID, element_id)

    def entries(self) -> list[Any]:
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, "input.entry")

    def message(self, element_id: str) -> str:
        from selenium.webdriver.common.by import By
        found = self.driver.find_elements(By.ID, element_id + "-msg")
        return found[0].text if found and found[0].is_displayed() else ""

    def status(self) -> str:
        return self.entry("status").text

    def save(self) -> Path | None:
        """Click Save; the saved file, or None when none appears."""
        before = set(self.downloads.iterdir())
        self.entry("save").click()
        deadline = time.monotonic() + DOWNLOAD_WAIT
        last_size = -1
        while time.monotonic() < deadline:
            # The file's name may show before its content (a CI run read it empty once):
            # it is whole when no .crdownload is left beside it, it has content (a saved
            # form never is empty) and its size held since the last look.
            now = set(self.downloads.iterdir())
            new = [p for p in now - before if not p.name.endswith(".crdownload")]
            writing = any(p.name.endswith(".crdownload") for p in now)
            if new and not writing:
                size = new[0].stat().st_size
                if size > 0 and size == last_size:
                    return new[0]
                last_size = size
            if "Not saved" in self.status():
                return None
            time.sleep(0.05)
        return None

    def set_value(self, element_id: str, text: str) -> None:
        """Put text in an entry at once (as a paste does), for long tables of cases."""
        self.driver.execute_script(
            "var e = document.getElementById(arguments[0]); e.value = arguments[1];"
            "e.dispatchEvent(new Event('input', {bubbles: true}));", element_id, text)


@pytest.fixture
def page(browser, tmp_path, assignment, student_build):
    return open_form(browser, tmp_path, assignment, student_build)


def open_form(driver: Any, folder: Path, assignment: Any, build: StudentBuild,
              clear: bool = True) -> Page:
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / "answers.html"
    html.write_text(answer_form(assignment, build), encoding="utf-8")
    downloads = folder / "downloads"
    downloads.mkdir(exist_ok=True)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.get(html.as_uri())
    if clear:  # every file:// page shares one storage: start without another test's draft
        driver.execute_script("localStorage.clear()")
        driver.refresh()
    return Page(driver, downloads, f"{build.folder}.json")


def typed(x: float, kind: str, i: int) -> str:
    """The right answer as a student might type it: plain, a fraction, scientific, or with
    the minus sign copied from the PDF."""
    if kind == "integer":
        return f"{2 * int(x)}/2" if i % 5 == 4 else str(int(x))
    frac = Fraction(x).limit_denominator(64)
    if not float(x).is_integer() and float(frac) == x:
        return f"{frac.numerator}/{frac.denominator}"
    if i % 3 == 1 and not float(x).is_integer():
        return f"{x:.5e}"
    text = repr(float(x))
    return text.replace("-", "\u2212") if i % 4 == 2 else text


def fill_everything(page: Page, build: StudentBuild) -> dict[str, str]:
    """Type every right answer; return what was typed by entry id."""
    said = {}
    ids = page.driver.execute_script(
        "return Array.from(document.querySelectorAll('input.entry'), e => e.id)")
    for i, (element_id, element) in enumerate(zip(ids, page.entries())):
        _, label, name, *path = element_id.split("-")
        variant = build.variants[label]
        value: Any = variant.answers[name]
        for p in path:
            value = value[int(p)]
        said[element_id] = typed(value, variant.field(name).kind.value, i)
        element.send_keys(said[element_id])
    return said


def test_a_filled_form_saves_a_file_that_earns_full_marks(page, tmp_path, assignment,
                                                          student_build):
    said = fill_everything(page, student_build)
    assert any("/" in t for t in said.values()) and any("e" in t for t in said.values())
    assert not [i for i in said if page.message(i)], "a right answer was flagged"
    screenshot(page.driver, tmp_path / "filled-form.png")
    saved = page.save()
    assert saved is not None and saved.name == page.file_name, page.status()
    assert "Saved" in page.status()

    data = json.loads(saved.read_text(encoding="utf-8"))
    blank = blank_submission(assignment, student_build)
    assert list(data) == list(blank) and data["student_id"] == "s042"
    assert data["name"] == "Ada Lovelace"
    assert {q: list(f) for q, f in data["answers"].items()} == \
        {q: list(f) for q, f in blank["answers"].items()}
    leaves = [x for q in data["answers"].values() for v in q.values() for x in flatten(v)]
    assert all(isinstance(x, str) and "/" in x or type(x) in (int, float) for x in leaves)

    key = tmp_path / "key.json"
    key.write_bytes(key_bytes(assignment, [student_build]))
    entry = grade_submission(load_key(key), read_submission(saved))
    assert entry.status == "graded", entry.messages
    assert entry.score == pytest.approx(sum(q.points for q in assignment.questions))
    assert all(q.score == pytest.approx(q.max_score) for q in entry.questions.values())


def test_maps_with_channels_are_filled_block_by_block(browser, tmp_path):
    a = parse_assignment({"title": "Channels", "seed": 4, "questions": [
        {"type": "conv2d_forward", "points": 5, "options": {"in_channels": 2, "out_channels": 2}},
        {"type": "batchnorm_forward", "points": 3, "options": {"features": 2}}]})
    b = make_variants(a, [Student("s7", "C")])[0]
    assert b.variants["q1"].field("output").shape[0] == 2  # (C, H, W)
    page = open_form(browser, tmp_path, a, b)
    ids = page.driver.execute_script(
        "return Array.from(document.querySelectorAll('input.entry'), e => e.id)")
    for element_id in ids:  # pasted rather than typed: the typing is tested above
        _, label, name, *path = element_id.split("-")
        value: Any = b.variants[label].answers[name]
        for p in path:
            value = value[int(p)]
        page.set_value(element_id, repr(float(value)))
    saved = page.save()
    assert saved is not None, page.status()
    answers = json.loads(saved.read_text())["answers"]
    for q in a.questions:
        result = grade_question(b.variants[q.label], answers[q.label], q.points)
        assert result.score == pytest.approx(q.points), result


def test_garbage_gets_a_message_and_the_form_refuses_to_save_it(page):
    from selenium.webdriver.common.keys import Keys

    page.entry("a-q2-output-0-1").send_keys("abc")
    page.entry("a-q1-total_params").send_keys("2.5")
    page.entry("a-q3-probabilities-0").send_keys("0,25")
    assert "row 1, column 2" in page.message("a-q2-output-0-1")
    assert "is not a number" in page.message("a-q2-output-0-1")
    assert "not a whole number" in page.message("a-q1-total_params")
    assert "point, not a comma" in page.message("a-q3-probabilities-0")
    assert page.entry("a-q2-output-0-1").get_attribute("aria-invalid") == "true"

    assert page.save() is None
    assert "Not saved: 3 entries" in page.status() and "q1 total_params" in page.status()
    assert page.driver.switch_to.active_element.get_attribute("id") == "a-q1-total_params"

    for element_id, right in [("a-q2-output-0-1", ""), ("a-q1-total_params", "7"),
                              ("a-q3-probabilities-0", "1/4")]:
        box = page.entry(element_id)
        box.send_keys(Keys.CONTROL, "a")  # as a person clears it: select, delete
        box.send_keys(Keys.DELETE, right)
        assert page.message(element_id) == ""
    assert "Every entry reads as a number now" in page.status()
    saved = page.save()
    assert saved is not None, page.status()
    answers = json.loads(saved.read_text())["answers"]
    assert answers["q2"]["output"][0][1] is None and answers["q1"]["total_params"] == 7
    assert answers["q3"]["probabilities"][0] == "1/4"


# (text, integer field?) pairs on both sides of the grader's rules
CASES = ["0.25", "-3", " 2.5e-3 ", ".5", "5.", "+7", "1E4", "1/4", "-3 / 8", "3/-4",
         "\u22120.5", "1/0", "-0/00", "0,25", "1,5e3", "abc", "1e", "e5", "0x10", "1.2.3",
         "1/2/3", "inf", "nan", "1e99999", "1e400", "1" * 65, "2**3", "3 4", "1/4.0",
         "12", "12.0", "24/2", "25/2", "2.5", "1.5e1", "-0", "9007199254740992"]


@pytest.mark.parametrize("element_id, parse", [("a-q3-probabilities-0", parse_number),
                                               ("a-q1-total_params", parse_integer)])
def test_the_form_reads_numbers_as_the_grader_does(page, element_id, parse):
    for text in CASES:
        page.set_value(element_id, text)
        try:
            parse(text)
            accepted = True
        except NotANumber:
            accepted = False
        flagged = page.entry(element_id).get_attribute("aria-invalid") == "true"
        assert flagged != accepted, f"{text!r}: grader {'accepts' if accepted else 'refuses'} " \
                                    f"it, the form says {page.message(element_id)!r}"
        assert bool(page.message(element_id)) == flagged


def test_a_saved_file_opens_again_to_go_on(browser, page, tmp_path, assignment, student_build):
    page.entry("a-q2-output-1-2").send_keys("3/8")
    page.entry("a-q5-mean").send_keys("4.75")
    page.entry("a-q1-output_shapes-7-0").send_keys("4096")
    first = page.save()
    assert first is not None

    fresh = open_form(browser, tmp_path / "again", assignment, student_build)
    assert fresh.entry("a-q5-mean").get_attribute("value") == ""
    fresh.entry("open").send_keys(str(first))
    wait_for(lambda: "Opened" in fresh.status(), fresh)
    assert fresh.entry("a-q2-output-1-2").get_attribute("value") == "3/8"
    assert fresh.entry("a-q5-mean").get_attribute("value") == "4.75"
    assert fresh.entry("a-q1-output_shapes-7-0").get_attribute("value") == "4096"
    again = fresh.save()
    assert again is not None and again.read_bytes() == first.read_bytes()
    fresh.entry("a-q5-variance").send_keys("3")
    assert "Changed since the last save" in fresh.status()


def test_the_draft_is_kept_in_the_browser(browser, page, tmp_path, assignment, student_build):
    page.entry("a-q4-loss").send_keys("0.594")
    reopened = open_form(browser, tmp_path / "later", assignment, student_build, clear=False)
    assert reopened.entry("a-q4-loss").get_attribute("value") == "0.594"
    assert "draft" in reopened.status()
    other = make_variants(assignment, [Student("s043", "Bob")])[0]  # another student's form
    theirs = open_form(browser, tmp_path / "other", assignment, other, clear=False)
    assert theirs.entry("a-q4-loss").get_attribute("value") == ""


def test_another_students_file_is_not_opened(browser, page, tmp_path, assignment):
    other = blank_submission(assignment, make_variants(assignment, [Student("s043", "Bob")])[0])
    other["answers"]["q5"]["mean"] = 3
    path = tmp_path / "s043.json"
    path.write_text(json.dumps(other))
    page.entry("open").send_keys(str(path))
    wait_for(lambda: "Not opened" in page.status(), page)
    assert "s043" in page.status() and page.entry("a-q5-mean").get_attribute("value") == ""


def test_a_blank_form_saves_the_blank_submission(page, assignment, student_build):
    saved = page.save()
    assert saved is not None
    assert saved.read_text(encoding="utf-8") == \
        readable_json(blank_submission(assignment, student_build)) + "\n"


def test_a_hostile_name_is_shown_and_saved_as_it_is(browser, tmp_path):
    a = parse_assignment({"title": "<b>T</b>", "seed": 3,
                          "questions": [{"type": "softmax", "points": 2}]})
    b = make_variants(a, [Student("x'1", HOSTILE)])[0]
    page = open_form(browser, tmp_path, a, b)
    from selenium.webdriver.common.by import By
    assert HOSTILE in page.driver.find_element(By.CSS_SELECTOR, ".student").text
    assert page.driver.execute_script("return window.__pwned__ === undefined")
    saved = page.save()
    assert saved is not None
    assert saved.read_text(encoding="utf-8") == readable_json(blank_submission(a, b)) + "\n"
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert data["name"] == HOSTILE and data["student_id"] == "x'1"


def wait_for(condition: Any, page: Page, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out; status: {page.status()!r}"
        time.sleep(0.05)


def screenshot(driver: Any, path: Path) -> None:
    """The whole page as a PNG (for a person to look at; kept in the test's folder)."""
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], height + 200)  # a window as tall as the page
    try:
        path.write_bytes(driver.get_screenshot_as_png())
    finally:
        driver.set_window_size(size["width"], size["height"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("DEEPDRILL_SCREENSHOTS")  # a folder to copy it to, to look at
    if keep:
        shutil.copy(path, Path(keep) / path.name)


def test_a_formula_field_takes_text_checks_its_names_and_grades_by_meaning(browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    a = parse_assignment({"title": "Formula", "seed": 5, "questions": [
        {"type": "cross_entropy", "points": 4, "params": {"formula": True}}]})
    b = make_variants(a, [Student("s8", "F")])[0]
    page = open_form(browser, tmp_path, a, b)
    box = page.entry("a-q1-grad_formula")
    box.send_keys("s_i - q")
    assert "unknown name" in page.message("a-q1-grad_formula")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE, "-(y_i - s_i")
    assert "not closed" in page.message("a-q1-grad_formula")
    box.send_keys(")")
    assert page.message("a-q1-grad_formula") == ""
    saved = page.save()
    assert saved is not None, page.status()
    answers = json.loads(saved.read_text())["answers"]["q1"]
    assert answers["grad_formula"] == "-(y_i - s_i)"
    result = grade_question(b.variants["q1"], answers, 4)
    assert result.fields["grad_formula"].correct
