"""Errors of the issuance package.

A refusal is not an error: `decide` returns a `Decision` whose refusal carries the reason
for the clerk and what to tell the applicant. Exceptions are for misuse and broken state:

    IssuanceError
     ├── RequestError       a request that cannot even be judged (wrong town, no subject)
     ├── NumberingError     a 発行番号 that cannot be allocated, parsed or voided
     ├── RegisterError      a register record that is malformed or would overwrite another
     └── ReleaseRefused     a list (名簿) release without the decision it needs

Every message is Japanese, for the clerk or supervisor who sees it.
"""

from __future__ import annotations


class IssuanceError(Exception):
    """Anything wrong in the issuance package that is not a refusal."""


class RequestError(IssuanceError):
    """A request that cannot be judged at all."""


class NumberingError(IssuanceError):
    """A 発行番号 that cannot be allocated, parsed or voided."""


class RegisterError(IssuanceError):
    """A malformed register record, or one that would overwrite an existing record."""


class ReleaseRefused(IssuanceError):
    """A 名簿 release refused: no valid signed decision, or the list is not releasable."""
