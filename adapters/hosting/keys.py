"""Rotating the key of an account an adapter hosts (``tix adapter <name> keys rotate``).

The same rotation as ``tix keys rotate`` (``account.keys.rotate_key``): a new key, a
``link.rekey`` signed with the old one to every partner of *that* hosted account, with the
overlap window, then the new key replaces ``<data dir>/hosted/<account>.key`` (the old one kept
beside it as ``.<old kid>.retired``). The running adapter keeps signing with the key it loaded
until it is restarted, which partners accept inside the window: restart it within the window.
"""

from __future__ import annotations

from account.config import Settings
from account.errors import Conflict, NotFound
from account.keys import Rotation, RotationError, rotate_key
from adapters.hosting.hub import hosted
from adapters.hosting.schema import AdapterSchema


def rotate(
    settings: Settings, schema: AdapterSchema, account_id: str, *, overlap_seconds: int
) -> Rotation:
    """Rotate the key of ``account_id``, a participant this adapter account hosts."""
    try:
        (account,) = hosted(settings, schema, account_id)
    except (Conflict, NotFound) as exc:
        raise RotationError(str(exc)) from exc
    return rotate_key(
        db_url=settings.db_url,
        account_id=account.account_id,
        label=account.name,
        key_path=account.key_file,
        overlap_seconds=overlap_seconds,
    )
