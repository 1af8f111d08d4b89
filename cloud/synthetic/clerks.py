"""Each town's clerk directory: officials on the deputy list, supervisors, the roster.

Clerks are drawn from a seeded Faker ja_JP instance. Login ids are ASCII
`{town}.{surname}` (`seiro.tanaka`), with a number appended on a clash (`seiro.tanaka2`),
so they are deterministic and unique within the town — and differ between towns, which
is what lets a host box tell a visitor from its own staff.

The mayor, the deputy mayor and the 総務課長 form the deputy list (deputy_rank 1, 2, 3)
that may sign an activation for a partner town; they hold the representative role. The
emergency roster (on_roster) is four people whose wrapped keys travel to partner boxes.
"""

from __future__ import annotations

import re

from faker import Faker

from shared.model import Clerk, Role

from .names import full_name
from .towns import TownSpec

STAFF = {"15307": 12, "15405": 7, "15581": 9}


def build_clerks(
    spec: TownSpec, fake: Faker, officials: dict[str, tuple[str, str, str]]
) -> list[Clerk]:
    used: set[str] = set()

    def login(romaji: str) -> str:
        stem = f"{spec.login_prefix}.{re.sub('[^a-z]', '', romaji.lower())}"
        candidate, n = stem, 1
        while candidate in used:
            n += 1
            candidate = f"{stem}{n}"
        used.add(candidate)
        return candidate

    clerks: list[Clerk] = []
    for rank, role in enumerate(("mayor", "deputy", "soumu"), start=1):
        name, kana, romaji = officials[role]
        roles: tuple[Role, ...] = (
            (Role.REPRESENTATIVE, Role.SUPERVISOR) if role == "soumu" else (Role.REPRESENTATIVE,)
        )
        clerks.append(
            Clerk(
                spec.code,
                login(romaji),
                name,
                kana,
                roles,
                on_roster=role == "soumu",
                deputy_rank=rank,
            )
        )
    staff = STAFF.get(spec.code, 8)
    for n in range(staff):
        male = fake.random.random() < 0.5
        surname = fake.last_name_pair()
        given = fake.first_name_male_pair() if male else fake.first_name_female_pair()
        name, kana = full_name(surname, given)
        if n < 2:
            roles = (Role.CLERK, Role.SUPERVISOR)  # 住民課長, 税務課長
        elif n == 2:
            roles = (Role.ADMIN,)  # 情報担当
        else:
            roles = (Role.CLERK,)
        clerks.append(
            Clerk(spec.code, login(surname[2]), name, kana, roles, on_roster=n in (0, 3, 4))
        )
    return clerks
