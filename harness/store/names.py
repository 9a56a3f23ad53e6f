"""Run ids are names, not paths: a run's files go to a folder named by its id, and a stored id may
come from a store that someone else wrote (a shared database, a copied file). One rule for every id
read or written.
"""

from __future__ import annotations

import re

from harness.core.errors import HarnessError

MAX_RUN_ID = 128
# What new_run_id makes (20261124-050312-demo-3f9a) and any id a person would type: no separator, no leading dot
# or dash, no `..`.
_PLAIN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_RUN_ID - 1}}}")


def plain(run_id: str) -> bool:
    """Whether `run_id` can name a folder inside another and nothing else."""
    return _PLAIN.fullmatch(run_id) is not None and ".." not in run_id


def checked(run_id: str, where: str) -> str:
    """`run_id`, refused when it is not a plain name (`where`: the store it is looked up in)."""
    if not plain(run_id):
        raise HarnessError(
            f"run id {run_id[:MAX_RUN_ID]!r} in {where} is not a plain name (letters, digits, '.',"
            f" '_' and '-', at most {MAX_RUN_ID}, starting with a letter or digit, no '..'): a"
            " run's files go to a folder named by its id\n  fix: name a run that `harness runs`"
            " lists with a plain id; a stored run with such an id was not made by harness (a"
            " copied or edited store?): delete it there"
        )
    return run_id
