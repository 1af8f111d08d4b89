"""Drill mode (訓練): the whole counter, end to end, without producing a real certificate.

The report asks for yearly drills. A drill must exercise everything — decisions, numbers,
registers, printing — yet nothing it prints may pass for a certificate, and nothing it
counts may mix with the town's real books:

- decisions in drill mode accept only synthetic residents (`TownData.synthetic`), and live
  mode refuses synthetic ones (decisions.py, step 1);
- every drill copy is a 「見本」: the decision's `sample` flag, which printing turns into
  the watermark and notice below;
- drill copies take numbers from their own series (prefix `D`, counter key "drill"), so a
  drill never consumes, and never collides with, a live 発行番号;
- drill copies are free (減免 "訓練（見本）") and left out of the 日計表 and of the
  reconciliation.
"""

from __future__ import annotations

from dataclasses import dataclass

WATERMARK = "見本"
NOTICE = "これは訓練用の見本です。証明書としては使用できません。"
NUMBER_PREFIX = "D"


@dataclass(frozen=True, slots=True)
class Marks:
    """What printing adds to a copy: a watermark and a notice, or nothing."""

    watermark: str
    notice: str


LIVE = Marks("", "")
DRILL = Marks(WATERMARK, NOTICE)


def marks(sample: bool) -> Marks:
    return DRILL if sample else LIVE


def is_drill_number(number: str) -> bool:
    return number.startswith(NUMBER_PREFIX)
