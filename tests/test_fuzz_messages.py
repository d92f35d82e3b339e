"""Fuzzing the wire contract's decoders: whatever bytes arrive on whatever subject, decoding
either gives a valid message of the subject's kind for the subject's site, or raises
`MessageDecodeError` whose text names the field or the problem; no other exception escapes, and
what a small payload can make the decoder allocate is bounded.

Inputs are arbitrary bytes, arbitrary JSON, and mutations of one valid message of every kind
(`tests/examples.py`): fields dropped, values replaced by other JSON (wrong types), huge strings,
NaN and infinities, deep nesting, unknown keys, times outside UTC's years, a wrong schema
version, site or subject. Budgets are small (the suite shares two cores); `database=None` keeps
no example database (a failure prints the example that reproduces it; hypothesis still keeps a
cache in `.hypothesis/`, which it git-ignores itself).
"""

import base64
import json
import tracemalloc
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protos import (
    MESSAGE_TYPES,
    FleetMessage,
    MessageDecodeError,
    decode_message,
    decode_subject_message,
    message_kind,
)
from protos.subjects import site_of_subject, subject_for
from tests.examples import every_message

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EXAMPLES = every_message("la-silla")
SUBJECTS = [subject_for(message) for message in EXAMPLES]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "2026-11-24T03:15:00", "2026-11-24T03:15:00Z", "ab" * 32, "good"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def assert_decodes_or_names_the_problem(subject: str, payload: bytes) -> FleetMessage | None:
    """The property every decoder input must satisfy; returns the message when it decoded."""
    try:
        message = decode_subject_message(subject, payload)
    except MessageDecodeError as exc:
        text = str(exc)
        assert text.startswith("invalid "), text
        detail = text.split(" message: ", 1)[1]
        assert detail.strip(), text
        for field in exc.fields:
            assert field in text, (field, text)
        event(f"refused: {exc.fields[0] if exc.fields else detail.split(' ')[0]}"[:40])
        return None
    event("decoded")
    kind = message_kind(subject)
    assert type(message) is MESSAGE_TYPES[kind]
    assert message.site_id == site_of_subject(subject)
    again = decode_subject_message(subject, message.model_dump_json().encode())
    assert again == message
    return message


def example_json(index: int) -> dict[str, Any]:
    return json.loads(EXAMPLES[index].model_dump_json())


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (dict keys and list indexes) inside a JSON document, the root excluded."""
    found: list[tuple[Any, ...]] = []
    children = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths_of(child, (*prefix, key)))
    return found


def parent_of(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        document = document[key]
    return document


# --- arbitrary input ----------------------------------------------------------------------------


@FUZZ
@given(subject=st.sampled_from(SUBJECTS), payload=st.binary(max_size=512))
def test_arbitrary_bytes_are_refused_with_a_decode_error(subject, payload):
    assert assert_decodes_or_names_the_problem(subject, payload) is None


@FUZZ
@given(subject=st.sampled_from(SUBJECTS), document=json_values)
def test_arbitrary_json_is_refused_with_a_decode_error(subject, document):
    payload = json.dumps(document).encode()
    assert assert_decodes_or_names_the_problem(subject, payload) is None


@FUZZ
@given(
    subject=st.text(max_size=60)
    | st.lists(st.text(max_size=12), min_size=3, max_size=7).map(".".join),
    index=st.integers(0, len(EXAMPLES) - 1),
)
def test_any_subject_either_carries_its_kind_or_is_refused(subject, index):
    payload = EXAMPLES[index].model_dump_json().encode()
    assert_decodes_or_names_the_problem(subject, payload)


@FUZZ
@given(subject=st.text(max_size=80))
def test_message_kind_of_any_subject_is_a_known_kind_or_a_value_error(subject):
    try:
        kind = message_kind(subject)
    except ValueError as exc:
        assert "subject" in str(exc)
    else:
        assert kind in MESSAGE_TYPES


@FUZZ
@given(kind=st.sampled_from(sorted(MESSAGE_TYPES)), payload=st.binary(max_size=256) | json_values)
def test_decode_message_of_every_kind_refuses_junk_with_a_decode_error(kind, payload):
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(MessageDecodeError) as err:
        decode_message(data, MESSAGE_TYPES[kind])
    assert err.value.kind == kind
    assert str(err.value).startswith(f"invalid {kind} message: ")


# --- mutations of valid messages ------------------------------------------------------------------


@st.composite
def mutated_messages(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid message's subject and its JSON with one part broken."""
    index = draw(st.integers(0, len(EXAMPLES) - 1))
    document = example_json(index)
    path = draw(st.sampled_from(paths_of(document)))
    parent = parent_of(document, path)
    key = path[-1]
    mutation = draw(
        st.sampled_from(["drop", "replace", "huge", "deep", "unknown", "far-time", "number"])
    )
    if mutation == "drop":
        del parent[key]
    elif mutation == "replace":
        parent[key] = draw(json_values)
    elif mutation == "huge":
        parent[key] = draw(st.sampled_from(["x", "é", "\x00", "a-"])) * draw(
            st.sampled_from([257, 1025, 200_001, 1_000_000])
        )
    elif mutation == "deep":
        depth = draw(st.integers(1, 900))
        parent[key] = json.loads("[" * depth + "]" * depth)
    elif mutation == "unknown" and isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=20))] = draw(json_values)
    elif mutation == "far-time":
        parent[key] = draw(
            st.sampled_from(
                [
                    "9999-12-31T23:59:59-14:00",
                    "0001-01-01T00:00:00+14:00",
                    "0001-01-01T00:00:00Z",
                    "9999-12-31T23:59:59Z",
                    "2026-02-30T00:00:00Z",
                    "2026-11-24T03:15:00",
                ]
            )
        )
    else:
        parent[key] = draw(
            st.sampled_from([0, -1, 2**63, -(2**63) - 1, 10**400, 1e308, -0.0, 1e-320, True])
        )
    return subject_for(EXAMPLES[index]), json.dumps(document).encode()


@FUZZ
@given(case=mutated_messages())
def test_a_broken_valid_message_decodes_or_names_what_is_wrong(case):
    subject, payload = case
    assert_decodes_or_names_the_problem(subject, payload)


NOT_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]


@FUZZ
@given(
    index=st.integers(0, len(EXAMPLES) - 1),
    data=st.data(),
    literal=st.sampled_from(NOT_FINITE),
)
def test_a_not_finite_number_anywhere_is_refused_naming_its_field(index, data, literal):
    document = example_json(index)
    numbers = [
        path
        for path in paths_of(document)
        if type(parent_of(document, path)[path[-1]]) in (int, float)
    ]
    path = data.draw(st.sampled_from(numbers))
    parent_of(document, path)[path[-1]] = "__number__"
    payload = json.dumps(document).encode().replace(b'"__number__"', literal.encode())
    with pytest.raises(MessageDecodeError) as err:
        decode_subject_message(subject_for(EXAMPLES[index]), payload)
    named = ".".join(str(key) for key in path)
    assert any(field.startswith(named) or named.startswith(field) for field in err.value.fields), (
        named,
        str(err.value),
    )


@FUZZ
@given(
    index=st.integers(0, len(EXAMPLES) - 1),
    version=st.integers() | st.text(max_size=5) | st.floats() | st.none(),
)
def test_any_other_schema_version_is_refused_naming_it(index, version):
    document = example_json(index)
    document["schema_version"] = version
    payload = json.dumps(document).encode()
    if version == 1 and type(version) is int:
        assert assert_decodes_or_names_the_problem(subject_for(EXAMPLES[index]), payload)
        return
    with pytest.raises(MessageDecodeError) as err:
        decode_subject_message(subject_for(EXAMPLES[index]), payload)
    assert "schema_version" in err.value.fields


@FUZZ
@given(index=st.integers(0, len(EXAMPLES) - 1), site_id=st.text(max_size=40))
def test_a_site_id_other_than_the_subjects_is_refused_naming_it(index, site_id):
    document = example_json(index)
    document["site_id"] = site_id
    payload = json.dumps(document).encode()
    if site_id == "la-silla":
        return
    with pytest.raises(MessageDecodeError) as err:
        decode_subject_message(subject_for(EXAMPLES[index]), payload)
    assert "site_id" in str(err.value)


@st.composite
def cutouts(draw: st.DrawFn) -> tuple[tuple[int, int], str]:
    """A cutout's shape and `data`: zlib+base64 of bytes that fit the shape or not, cut,
    followed by junk, or not zlib or base64 at all."""
    shape = draw(st.tuples(st.integers(-1, 130), st.integers(-1, 130)))
    fitting = bytes(4 * max(shape[0] * shape[1], 0))
    raw = draw(st.just(fitting) | st.binary(max_size=2000))
    packed = zlib.compress(raw)
    form = draw(st.sampled_from(["whole", "cut", "trailing", "not-zlib", "not-base64"]))
    if form == "cut":
        packed = packed[: draw(st.integers(0, len(packed)))]
    elif form == "trailing":
        packed += draw(st.binary(min_size=1, max_size=20))
    elif form == "not-zlib":
        packed = raw
    text = base64.b64encode(packed).decode("ascii")
    return shape, text + draw(st.text(max_size=3)) if form == "not-base64" else text


@FUZZ
@given(cutout=cutouts(), which=st.sampled_from(["new", "reference", "difference"]))
def test_any_cutout_decodes_to_its_shape_or_is_refused_naming_it(cutout, which):
    shape, data = cutout
    candidate = next(m for m in EXAMPLES if m.KIND == "transient-candidate")
    document = json.loads(candidate.model_dump_json())
    document["cutouts"][which] = {"shape": list(shape), "data": data}
    try:
        message = decode_subject_message(subject_for(candidate), json.dumps(document).encode())
    except MessageDecodeError as exc:
        assert any(field.startswith(f"cutouts.{which}") for field in exc.fields), str(exc)
        event("refused")
        return
    event("decoded")
    cutout = getattr(message.cutouts, which)
    assert len(cutout.raw()) == shape[0] * shape[1] * 4


def time_paths(document: Any) -> list[tuple[Any, ...]]:
    """Paths of the document's time fields (strings that parse as an ISO time)."""
    found = []
    for path in paths_of(document):
        value = parent_of(document, path)[path[-1]]
        if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
            found.append(path)
    return found


TIMED_EXAMPLES = [i for i in range(len(EXAMPLES)) if time_paths(example_json(i))]


@FUZZ
@given(
    index=st.sampled_from(TIMED_EXAMPLES),
    data=st.data(),
    when=st.datetimes()
    | st.datetimes(min_value=datetime(9999, 12, 31))
    | st.datetimes(max_value=datetime(1, 1, 1, 23, 59)),
    offset_min=st.integers(-(24 * 60 - 1), 24 * 60 - 1),
)
def test_any_time_at_any_offset_decodes_to_its_utc_instant_or_is_refused(
    index, data, when, offset_min
):
    document = example_json(index)
    path = data.draw(st.sampled_from(time_paths(document)))
    zone = timezone(timedelta(minutes=offset_min))
    parent_of(document, path)[path[-1]] = when.replace(tzinfo=zone).isoformat()
    try:
        message = decode_subject_message(
            subject_for(EXAMPLES[index]), json.dumps(document).encode()
        )
    except MessageDecodeError as exc:
        named = ".".join(str(key) for key in path)
        assert named in exc.fields or "<root>" in exc.fields, str(exc)
        return
    decoded = message.model_dump(mode="python")
    for key in path:
        decoded = decoded[key]
    assert decoded == when.replace(tzinfo=zone)
    assert decoded.utcoffset() == timedelta(0)


# --- named hostile inputs -----------------------------------------------------------------------


@pytest.mark.parametrize("time", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_time_utc_cannot_hold_is_refused_naming_the_field(time):
    document = example_json(0)
    document["created_at"] = time
    with pytest.raises(MessageDecodeError) as err:
        decode_subject_message(SUBJECTS[0], json.dumps(document).encode())
    assert err.value.fields == ["created_at"]
    assert "outside the years" in str(err.value)


@pytest.mark.parametrize("version", [True, 1.0])
def test_a_schema_version_equal_to_1_but_not_the_integer_is_refused(version):
    document = example_json(0)
    document["schema_version"] = version
    with pytest.raises(MessageDecodeError) as err:
        decode_subject_message(SUBJECTS[0], json.dumps(document).encode())
    assert err.value.fields == ["schema_version"]


@pytest.mark.parametrize("depth", [1_000, 200_000])
def test_deeply_nested_json_is_refused_without_recursion_error(depth):
    payload = b'{"a":' * depth + b"1" + b"}" * depth
    with pytest.raises(MessageDecodeError, match="Invalid JSON"):
        decode_subject_message(SUBJECTS[0], payload)


def zlib_bomb(inflated_bytes: int) -> str:
    """zlib+base64 text of `inflated_bytes` zeros, built in 1 MB steps (a few hundred kB)."""
    deflater = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    parts = [deflater.compress(chunk) for _ in range(inflated_bytes >> 20)]
    parts.append(deflater.flush())
    return base64.b64encode(b"".join(parts)).decode("ascii")


def test_a_zlib_bomb_in_a_cutout_is_refused_without_inflating_it():
    candidate = next(m for m in EXAMPLES if m.KIND == "transient-candidate")
    document = json.loads(candidate.model_dump_json())
    bomb = zlib_bomb(140 << 20)
    assert len(bomb) < 200_000  # under the field's limit: only the inflation is refused
    for name in ("new", "reference", "difference"):
        document["cutouts"][name]["data"] = bomb
    payload = json.dumps(document).encode()

    tracemalloc.start()
    try:
        with pytest.raises(MessageDecodeError) as err:
            decode_subject_message(subject_for(candidate), payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert set(err.value.fields) == {f"cutouts.{n}" for n in ("new", "reference", "difference")}
    assert "more than the 1764 bytes" in str(err.value)
    assert peak < 20 << 20, f"decoding a 600 kB message allocated {peak / 2**20:.0f} MiB"
