"""The committed JSON Schemas are exactly what the models generate."""

from protos.schemas import SCHEMA_DIR, render_json_schemas


def test_committed_json_schemas_match_the_models():
    rendered = render_json_schemas()
    committed = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}
    stale = sorted(n for n in rendered if committed.get(n) != rendered[n])
    extra = sorted(set(committed) - set(rendered))
    assert not stale and not extra, (
        f"schemas drifted (stale {stale}, extra {extra}): run `python -m protos.schemas`"
    )


def test_schemas_describe_the_envelope():
    for text in render_json_schemas().values():
        assert '"message_id"' in text and '"schema_version"' in text and '"site_id"' in text
