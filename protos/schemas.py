"""JSON Schemas generated from the message models, for consumers outside Python.

`python -m protos.schemas` rewrites `protos/schemas/`; a test fails if the committed files drift.
"""

import json
from pathlib import Path

from protos.registry import MESSAGE_TYPES

SCHEMA_DIR = Path(__file__).parent / "schemas"


def render_json_schemas() -> dict[str, str]:
    """File name -> JSON Schema text for every message kind."""
    return {
        f"{kind}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True)
        + "\n"
        for kind, model in sorted(MESSAGE_TYPES.items())
    }


def write_json_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema into `directory` and return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_json_schemas().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_json_schemas():
        print(path)
