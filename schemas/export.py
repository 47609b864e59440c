"""Write the JSON Schema files of the wire protocol: ``python -m schemas.export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.envelope import BODY_MODELS, Envelope

SCHEMA_DIR = Path(__file__).parent / "json"


def generated() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, for the envelope and every message body."""
    out: dict[str, dict[str, Any]] = {
        "envelope.schema.json": Envelope.model_json_schema(by_alias=True, mode="validation")
    }
    for name, model in BODY_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://tix.example/schemas/v1/{name}.schema.json"
        out[f"{name}.schema.json"] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, schema in generated().items():
        (SCHEMA_DIR / name).write_text(render(schema), encoding="utf-8")
        print(f"wrote {SCHEMA_DIR / name}")


if __name__ == "__main__":
    main()
