"""A student's line of the key: every variant's mistakes set apart by two tabs, so a
grader parses them only for a wrong answer, while any JSON tool reads the line as it
reads a line without them."""

from __future__ import annotations

import json

import orjson

from deepdrill.generator.exercise import make_variant
from deepdrill.model.key import MISTAKES_AT, Shared, read_line, student_line
from deepdrill.model.variant import StoredVariant, Variant


def _variants(shared: Shared) -> dict[str, dict]:
    return {f"q{i}": shared.variant_json(make_variant(t, seed))
            for i, (t, seed) in enumerate([("batchnorm_forward", 1), ("cnn_layer_table", 2),
                                           ("cross_entropy", 3), ("conv2d_forward", 4)], 1)}


def test_the_line_is_the_variants_json_and_keeps_each_ones_mistakes_unparsed():
    shared = Shared()
    variants = _variants(shared)
    line = student_line("s1", variants)
    whole = {"id": "s1", "variants": variants}
    assert json.loads(line) == orjson.loads(line) == whole  # tabs are whitespace
    assert line.count(MISTAKES_AT) == len(variants) and line.count(b"\t") == 2 * len(variants)
    data = read_line(memoryview(b"  " + line)[2:])
    for label, v in data["variants"].items():
        assert type(v["mistakes"]) is bytes
        assert orjson.loads(v["mistakes"]) == variants[label]["mistakes"]
        assert {k: x for k, x in v.items() if k != "mistakes"} == \
            {k: x for k, x in variants[label].items() if k != "mistakes"}
        stored = StoredVariant.read(v, shared)
        plain = Variant.from_json(shared.inline(variants[label]))
        assert stored.mistakes == plain.mistakes and stored.to_json() == plain.to_json()


def test_lines_without_our_tabs_are_read_whole():
    shared = Shared()
    variants = _variants(shared)
    whole = {"id": "s1", "variants": variants}
    plain = orjson.dumps(whole)  # a key written before the tabs
    assert read_line(plain) == whole
    # tabs a JSON tool wrote as whitespace, ours among them or not
    for text in (json.dumps(whole, indent="\t").replace("\n", ""),
                 json.dumps(whole, separators=(",\t", ":\t")),
                 student_line("s1", variants).replace(b"\t}", b"\t\t}"),
                 # a tool's tab after each "mistakes": (paired up, they cut the line wrong)
                 orjson.dumps(whole).replace(b'"mistakes":', b'"mistakes":\t')):
        text = text.encode() if isinstance(text, str) else text
        assert read_line(text) == whole
