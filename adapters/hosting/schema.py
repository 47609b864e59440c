"""Which tables an adapter owns and where its migrations are (no Alembic import: the CLI loads it).

Each adapter has its own Alembic chain, apart from the node's (``account/migrations``): its
scripts in ``adapters/<name>/migrations``, revision ids ``<name>_0001``, ``<name>_0002``, … and
its own version table ``alembic_version_<name>`` in the node's database, so neither chain can
ever see, or collide with, the other's revisions. ``adapters.hosting.migrate`` runs them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.hosting.participants import HostedParticipant

ADAPTERS = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class AdapterSchema:
    name: str  # "email": the CLI's word, the revision ids' and version table's prefix
    models: str  # the module defining the adapter's tables
    participant: str  # its participant table's class

    @property
    def package(self) -> str:
        return self.models.rpartition(".")[0]

    @property
    def versions(self) -> Path:
        return ADAPTERS / self.name / "migrations"

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.name}"

    @property
    def first_revision(self) -> str:
        return f"{self.name}_0001"

    def load_models(self) -> Any:
        return importlib.import_module(self.models)

    def participant_model(self) -> type[HostedParticipant]:
        model: type[HostedParticipant] = getattr(self.load_models(), self.participant)
        return model

    def tables(self) -> frozenset[str]:
        """Names of the tables of the SQLModel classes defined in the adapter's package."""
        from account.migrate import tables_defined_in

        self.load_models()
        return tables_defined_in(self.package)
