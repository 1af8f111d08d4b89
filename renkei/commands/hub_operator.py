"""`renkei hub-operator add --data DIR --login ID`: register an operator for the hub's
screens (cloud/operators.py). The password comes from RENKEI_OPERATOR_PASSWORD or is asked
on the terminal (twice); it is stored only as an argon2id hash in DIR/operators.json.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "hub-operator", help="register the hub operators who may log in to the hub's screens"
    )
    actions = parser.add_subparsers(dest="operator_action", metavar="ACTION", help="what to do")
    add = actions.add_parser(
        "add",
        help="add an operator (or set a new password for one)",
        description="Add a hub operator; the password comes from RENKEI_OPERATOR_PASSWORD or "
        "is asked on the terminal.",
    )
    add.add_argument("--data", type=Path, default=Path("var/hub"), help="the hub's data folder")
    add.add_argument("--login", required=True, help="the operator's login id")
    add.set_defaults(func=run_add)
    parser.set_defaults(func=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_add(args: argparse.Namespace) -> int:
    from cloud.operators import OperatorError, add_operator

    password = os.environ.get("RENKEI_OPERATOR_PASSWORD")
    if password is None:
        password = getpass.getpass("パスワード: ")
        if getpass.getpass("もう一度: ") != password:
            print("パスワードが一致しません。", file=sys.stderr)
            return 2
    try:
        add_operator(args.data, args.login, password)
    except OperatorError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"運用担当者 {args.login} を登録しました。")
    return 0
