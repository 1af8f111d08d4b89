"""Fees: the town's 手数料条例 table and the 減免 that apply at the counter.

The amount per copy comes from `Town.fees` (keys are `DocumentKind` values). 減免, in the
order they are tried:

- drill mode: nothing is charged for a 見本;
- 公用: requests by government bodies are free;
- 継続検査用: the 軽自動車税 certificate for vehicle inspection is free by law;
- disaster: an exemption the town's representative switches on after a disaster.

The gross amount is kept with the reason, so the 日計表 shows both what was waived and
why.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shared.model import Town

from .errors import IssuanceError
from .requests import DocumentKind, RequesterKind


class Reduction(enum.StrEnum):
    NONE = "なし"
    DRILL = "訓練（見本）"
    OFFICIAL = "公用"
    VEHICLE_INSPECTION = "継続検査用"
    DISASTER = "災害減免"


@dataclass(frozen=True, slots=True)
class Fee:
    fee_key: str
    unit: int  # yen per copy from the town's table
    copies: int
    gross: int
    reduction: Reduction
    payable: int


def assess(
    town: Town,
    document: DocumentKind,
    copies: int,
    requester: RequesterKind,
    *,
    disaster_exemption: bool,
    drill: bool,
) -> Fee:
    table = dict(town.fees)
    if document.value not in table:
        raise IssuanceError(
            f"{town.name}の手数料表に「{document.label}」がありません。管理者に連絡してください。"
        )
    unit = table[document.value]
    gross = unit * copies
    if drill:
        reduction = Reduction.DRILL
    elif requester is RequesterKind.OFFICIAL:
        reduction = Reduction.OFFICIAL
    elif document is DocumentKind.KEIJIDOSHA_KEIZOKU:
        reduction = Reduction.VEHICLE_INSPECTION
    elif disaster_exemption and gross > 0:
        reduction = Reduction.DISASTER
    else:
        reduction = Reduction.NONE
    payable = gross if reduction is Reduction.NONE else 0
    return Fee(document.value, unit, copies, gross, reduction, payable)
