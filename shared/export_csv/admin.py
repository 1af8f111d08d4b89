"""The town's own tables: 職員 (shokuin.csv) and 外字対応表 (gaiji.csv)."""

from __future__ import annotations

import re

from shared.model import Clerk, GaijiMapping, GaijiTarget, Role

from .codec import LIST_SEPARATOR, Row, fmt_bool
from .errors import ExportWriteError
from .gaiji import code_points, is_legacy_gaiji, is_supplementary_pua
from .spec import Context, FileSpec, join

# ---------------------------------------------------------------------------- 職員・外字

SHOKUIN: FileSpec[Clerk] = FileSpec(
    name="shokuin.csv",
    attribute="clerks",
    header=("ログインID", "氏名", "氏名_フリガナ", "権限", "緊急時名簿", "代理順位"),
    key=lambda k: (k.login_id,),
    to_row=lambda k: [
        k.login_id,
        k.name,
        k.kana,
        join(tuple(role.value for role in k.roles), f"職員 {k.login_id}"),
        fmt_bool(k.on_roster),
        str(k.deputy_rank),
    ],
    from_row=lambda r, c: _clerk(r, c),
)


def _clerk(r: Row, c: Context) -> Clerk:
    roles: list[Role] = []
    for value in r.raw("権限").split(LIST_SEPARATOR):
        role = next((m for m in Role if m.value == value), None)
        if role is None or role in roles:
            allowed = "、".join(m.value for m in Role)
            raise r.error(
                "権限",
                f"権限は {allowed} を「;」で区切って重複なく書いてください",
                f"distinct roles from {[m.value for m in Role]} separated by ';'",
            )
        roles.append(role)
    return Clerk(
        town_code=c.town_code,
        login_id=r.ident("ログインID"),
        name=r.text("氏名", required=True),
        kana=r.kana("氏名_フリガナ"),
        roles=tuple(roles),
        on_roster=r.boolean("緊急時名簿"),
        deputy_rank=r.integer("代理順位"),
    )


GAIJI: FileSpec[GaijiMapping] = FileSpec(
    name="gaiji.csv",
    attribute="gaiji",
    header=("外字コード", "移行先区分", "移行後コード", "字形の説明"),
    key=lambda g: (_single(g.legacy),),
    to_row=lambda g: [
        code_points(g.legacy),
        g.target.value,
        code_points(g.replacement),
        g.description,
    ],
    from_row=lambda r, c: _gaiji(r, c),
)


_CODE_POINT = re.compile(r"U\+([0-9A-F]{4,6})")


def _single(legacy: str) -> int:
    if len(legacy) != 1:
        raise ExportWriteError(f"外字「{legacy}」: 外字コードは1文字です")
    return ord(legacy)


def _code_points(r: Row, column: str) -> str:
    chars: list[str] = []
    for item in r.raw(column).split(" "):
        match = _CODE_POINT.fullmatch(item)
        code = int(match[1], 16) if match else -1
        if not 0 <= code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise r.error(
                column,
                "文字は「U+8FBB U+E0102」のように符号位置を空白で区切って書きます",
                "code points as U+XXXX separated by single spaces",
            )
        chars.append(chr(code))
    return "".join(chars)


def _gaiji(r: Row, c: Context) -> GaijiMapping:
    legacy = _code_points(r, "外字コード")
    if len(legacy) != 1 or not is_legacy_gaiji(legacy):
        raise r.error(
            "外字コード",
            "外字コードは私用領域（U+E000～U+F8FF）の1文字です",
            "one code point in U+E000–U+F8FF",
        )
    target = r.choice("移行先区分", GaijiTarget)
    replacement = _code_points(r, "移行後コード")
    problem: tuple[str, str] | None = None
    if target is GaijiTarget.UNICODE and any(
        is_legacy_gaiji(ch) or is_supplementary_pua(ch) for ch in replacement
    ):
        problem = ("Unicode への移行先に私用領域の文字は使えません", "no Private Use characters")
    elif target is GaijiTarget.GYOSEI and not (
        len(replacement) == 1 and is_supplementary_pua(replacement)
    ):
        problem = (
            "行政事務標準文字は補助私用面（U+F0000～U+10FFFD）の1文字です",
            "one code point in U+F0000–U+10FFFD",
        )
    elif target is GaijiTarget.TOWN_FONT and replacement != legacy:
        problem = ("町村外字フォントの移行後コードは外字コードと同じです", "the legacy code itself")
    if problem is not None:
        raise r.error("移行後コード", problem[0], problem[1])
    return GaijiMapping(
        town_code=c.town_code,
        legacy=legacy,
        target=target,
        replacement=replacement,
        description=r.text("字形の説明", gaiji=False),
    )
