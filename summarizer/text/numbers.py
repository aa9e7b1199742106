"""Spoken numbers in Finnish, Swedish and English ("kolmekymmentäkahdeksan", "trettioåtta").

Speech recognition writes numbers either as digits or as words, often in spoken forms
("kaks", "kolkytkaheksan") and, in Finnish, inflected ("kolmen", "viiden"). A word number is
read by splitting it into known parts, longest first, so compounds need no list of their own.
"""

from __future__ import annotations

from functools import lru_cache

# (part, value, kind): kind "unit" adds, "ten" multiplies what came before by ten,
# "teen" adds ten to what came before, "hundred" multiplies by a hundred.
_FI_UNITS = {
    "yksi": 1, "yks": 1, "yhden": 1, "yhtä": 1,
    "kaksi": 2, "kaks": 2, "kahden": 2, "kahen": 2, "kahta": 2, "kahdeksi": 2,
    "kolme": 3, "kol": 3, "kolmen": 3, "kolmea": 3, "kolmeksi": 3,
    "neljä": 4, "nel": 4, "neljän": 4, "neljää": 4, "nelj": 4,
    "viisi": 5, "viis": 5, "viiden": 5, "viittä": 5,
    "kuusi": 6, "kuus": 6, "kuuden": 6, "kuutta": 6,
    "seitsemän": 7, "seittemän": 7, "seitsemää": 7,
    "kahdeksan": 8, "kaheksan": 8, "kahdeksaa": 8,
    "yhdeksän": 9, "yheksän": 9, "yhdeksää": 9,
}  # fmt: skip
_FI_TENS = ("kymmentä", "kymmenen", "kymmenen", "kyt", "kymment")
_SV_UNITS = {
    "en": 1, "ett": 1, "två": 2, "tre": 3, "fyra": 4, "fem": 5, "sex": 6, "sju": 7,
    "åtta": 8, "nio": 9, "nie": 9, "tie": 10, "tio": 10, "elva": 11, "tolv": 12,
    "tretton": 13, "fjorton": 14,
    "femton": 15, "sexton": 16, "sjutton": 17, "arton": 18, "nitton": 19,
    "tjugo": 20, "tjugu": 20, "trettio": 30, "tretti": 30, "fyrtio": 40, "förtio": 40,
    "femtio": 50, "sextio": 60, "sjuttio": 70, "åttio": 80, "nittio": 90,
}  # fmt: skip
_EN_UNITS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip

_PARTS: list[tuple[str, int, str]] = sorted(
    [(w, v, "unit") for w, v in _FI_UNITS.items()]
    + [(w, 10, "ten") for w in _FI_TENS]
    + [("toista", 10, "teen"), ("sataa", 100, "hundred"), ("sata", 100, "hundred")]
    + [(w, v, "unit") for w, v in _SV_UNITS.items()]
    + [(w, v, "unit") for w, v in _EN_UNITS.items()]
    + [("hundred", 100, "hundred"), ("hundra", 100, "hundred")],
    key=lambda p: -len(p[0]),
)

HALF_WORDS = frozenset({"puoli", "puol", "puolikas", "halv", "halvt", "half"})
DECIMAL_JOINERS = frozenset({"ja", "och", "and", "pilkku", "komma", "point", "piste"})


def _decompose(word: str) -> list[tuple[int, str]] | None:
    """Split ``word`` into number parts (longest match first, with backtracking)."""
    if not word:
        return []
    for part, value, kind in _PARTS:
        if word.startswith(part):
            rest = _decompose(word[len(part) :].lstrip("-"))
            if rest is not None:
                return [(value, kind), *rest]
    return None


@lru_cache(maxsize=4096)
def word_number(word: str) -> int | None:
    """The integer a spoken number word stands for, or None ("kolmekymmentäkahdeksan" → 38)."""
    w = word.lower()
    if w.isdigit():
        return int(w)
    parts = _decompose(w)
    if not parts:
        return None
    total = 0
    pending = 0
    for value, kind in parts:
        if kind == "unit":
            if pending and value < 10 and pending < 10:
                return None  # "kaksikolme" is not a number
            pending += value
        elif kind == "ten":
            total += (pending or 1) * 10
            pending = 0
        elif kind == "teen":
            if not pending or pending >= 10:
                return None
            total += pending + 10
            pending = 0
        elif kind == "hundred":
            total += (pending or 1) * 100
            pending = 0
    return total + pending


def digits_value(token: str) -> float | None:
    """A number written with digits, with a comma or point decimal ("38,5" → 38.5)."""
    t = token.replace(",", ".")
    try:
        return float(t)
    except ValueError:
        return None
