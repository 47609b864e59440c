"""Rotating the key of an account an adapter hosts (``tix adapter <name> keys rotate``).

The same rotation as ``tix keys rotate`` (``account.keys.rotate_key``): a new key, a
``link.rekey`` signed with the old one to every partner of *that* hosted account, with the
overlap window, then the new key replaces ``<data dir>/hosted/<account>.key`` (the old one kept
beside it as ``.<old kid>.retired``). The running adapter keeps signing with the key it loaded
until it is restarted, which partners accept inside the window: restart it within the window.
"""

from __future__ import annotations

from sqlalchemy import inspect
from sqlmodel import Session

from account.config import Settings
from account.db import make_engine
from account.keys import Rotation, RotationError, rotate_key
from adapters.hosting import participants
from adapters.hosting.schema import AdapterSchema


def rotate(
    settings: Settings, schema: AdapterSchema, account_id: str, *, overlap_seconds: int
) -> Rotation:
    """Rotate the key of ``account_id``, a participant this adapter account hosts."""
    model = schema.participant_model()
    engine = make_engine(settings.db_url)
    try:
        if str(model.__tablename__) not in inspect(engine).get_table_names():
            raise RotationError(
                f"the database {settings.db_url.split('@')[-1]} has no {schema.name} adapter "
                f"tables: run this in the {schema.name} adapter's environment"
            )
        with Session(engine) as session:
            row = session.exec(
                participants.of_adapter(model, settings.account_id).where(
                    model.account_id == account_id
                )
            ).first()
            name = row.name if row is not None else ""
    finally:
        engine.dispose()
    if row is None:
        raise RotationError(
            f"{account_id} is not a {schema.name} participant hosted by {settings.account_id}"
        )
    return rotate_key(
        db_url=settings.db_url,
        account_id=account_id,
        label=name,
        key_path=participants.key_path(settings, account_id),
        overlap_seconds=overlap_seconds,
    )
