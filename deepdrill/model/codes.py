"""Short printed codes for sheets and questions, with a check character.

Every sheet and every question prints a code made from its seed, so a paper with a
smudged name, or a photo of one question, leads back to the student and the variant in
the key. Codes use Crockford's base 32 (no I, L, O or U; read case-insensitively, with
I and L taken as 1 and O as 0) and end in Crockford's mod-37 check character, which
catches any single misread character and any swap of two neighbours.

>>> code = variant_code("q1", 12345)
>>> code, parse(code.lower().replace("-", " ")) == code.replace("-", "")
('D3AP-3BZH', True)
"""

from __future__ import annotations

import hashlib

DIGITS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CHECKS = DIGITS + "*~$=U"  # 37 symbols: the check is the value mod 37
BODY = 7  # characters before the check: 35 bits, ~3 * 10^10 codes
SYNONYMS = str.maketrans({"I": "1", "L": "1", "O": "0"})


def variant_code(kind: str, seed: int) -> str:
    """The printed code of a question (``kind`` its label) or a sheet (``kind`` "sheet"),
    from its seed, as ``XXXX-XXXX``."""
    digest = hashlib.sha256(f"deepdrill:{kind}:{seed}".encode()).digest()
    value = int.from_bytes(digest[:5], "big") >> (40 - 5 * BODY)
    body = "".join(DIGITS[(value >> (5 * i)) & 31] for i in reversed(range(BODY)))
    text = body + CHECKS[value % 37]
    return f"{text[:4]}-{text[4:]}"


def parse(text: str) -> str | None:
    """A code as typed or read off a page, normalised (no hyphens or spaces, upper case,
    I/L/O read as 1/1/0); None when it cannot be a code or its check fails."""
    raw = "".join(text.split()).replace("-", "").upper()
    body, check = raw[:-1].translate(SYNONYMS), raw[-1:]
    if len(body) != BODY or not check or any(c not in DIGITS for c in body) or \
            check.translate(SYNONYMS) not in CHECKS:
        return None
    value = 0
    for c in body:
        value = value * 32 + DIGITS.index(c)
    check = check if check in "*~$=U" else check.translate(SYNONYMS)
    return body + check if CHECKS[value % 37] == check else None


def near(text: str, known: dict[str, object]) -> list[str]:
    """The known codes (normalised) one misread character away from ``text``: what a
    smudged code could have been."""
    raw = "".join(text.split()).replace("-", "").upper()
    raw = raw[:-1].translate(SYNONYMS) + raw[-1:]
    return sorted(c for c in known if len(c) == len(raw) and
                  sum(a != b for a, b in zip(c, raw)) == 1)
