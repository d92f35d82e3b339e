"""The wire contract validates strictly and names the field that is wrong."""

import json
import math
from datetime import datetime

import pytest
from pydantic import ValidationError

from protos import (
    MESSAGE_TYPES,
    EncodedArray,
    FrameScore,
    ImageMetrics,
    MessageDecodeError,
    ModelRelease,
    decode_message,
    decode_subject_message,
    stable_message_id,
)
from protos.subjects import subject_for
from tests.examples import corrupt_base64, every_message, frame_score


@pytest.mark.parametrize("message", every_message(), ids=lambda m: m.KIND)
def test_every_message_round_trips_through_json(message):
    decoded = decode_subject_message(subject_for(message), message.model_dump_json().encode())
    assert decoded == message
    assert decoded.schema_version == 1


def test_every_kind_has_an_example():
    assert {m.KIND for m in every_message()} == set(MESSAGE_TYPES)


def _score_json(**changes) -> bytes:
    data = json.loads(frame_score().model_dump_json())
    data.update(changes)
    return json.dumps(data).encode()


def test_wrong_type_names_the_field():
    with pytest.raises(MessageDecodeError) as err:
        decode_message(_score_json(confidence="very"), FrameScore)
    assert err.value.fields == ["confidence"]
    assert "confidence" in str(err.value)


def test_missing_field_names_the_field():
    data = json.loads(frame_score().model_dump_json())
    del data["frame"]["sha256"]
    with pytest.raises(MessageDecodeError) as err:
        decode_message(json.dumps(data).encode(), FrameScore)
    assert err.value.fields == ["frame.sha256"]


def test_unknown_schema_version_is_rejected():
    with pytest.raises(MessageDecodeError) as err:
        decode_message(_score_json(schema_version=2), FrameScore)
    assert err.value.fields == ["schema_version"]


def test_unknown_field_is_rejected():
    with pytest.raises(MessageDecodeError) as err:
        decode_message(_score_json(colour="blue"), FrameScore)
    assert err.value.fields == ["colour"]


def test_naive_timestamp_is_rejected():
    data = json.loads(frame_score().model_dump_json())
    data["frame"]["date_obs"] = "2026-11-24T03:15:00"
    with pytest.raises(MessageDecodeError) as err:
        decode_message(json.dumps(data).encode(), FrameScore)
    assert err.value.fields == ["frame.date_obs"]


def test_timestamps_are_converted_to_utc():
    data = json.loads(frame_score().model_dump_json())
    data["frame"]["date_obs"] = "2026-11-24T05:15:00+02:00"
    score = decode_message(json.dumps(data).encode(), FrameScore)
    assert score.frame.date_obs == datetime.fromisoformat("2026-11-24T03:15:00+00:00")
    assert score.frame.date_obs.utcoffset().total_seconds() == 0


def test_confidence_must_be_the_probability_of_the_label():
    with pytest.raises(MessageDecodeError, match="confidence must equal"):
        decode_message(_score_json(confidence=0.2), FrameScore)


def test_probabilities_must_sum_to_one():
    data = json.loads(frame_score().model_dump_json())
    data["probabilities"]["bad"] = 0.5
    with pytest.raises(MessageDecodeError, match="sum to"):
        decode_message(json.dumps(data).encode(), FrameScore)


def test_bad_site_id_is_rejected():
    with pytest.raises(MessageDecodeError) as err:
        decode_message(_score_json(site_id="La Silla!"), FrameScore)
    assert err.value.fields == ["site_id"]


def test_message_on_another_sites_subject_is_rejected():
    message = frame_score("la-silla")
    with pytest.raises(MessageDecodeError, match="does not match subject"):
        decode_subject_message(
            "fleet.site.siding-spring.frame.scored", message.model_dump_json().encode()
        )


def test_unknown_subject_is_rejected():
    with pytest.raises(MessageDecodeError, match="no known message kind"):
        decode_subject_message("fleet.site.la-silla.weather", b"{}")


def test_invalid_json_is_a_decode_error():
    with pytest.raises(MessageDecodeError):
        decode_message(b"{not json", FrameScore)


def test_cutout_with_wrong_byte_count_is_rejected():
    with pytest.raises(ValueError, match="needs"):
        EncodedArray(shape=(21, 21), data=corrupt_base64())


def test_cutout_round_trips_its_bytes():
    raw = bytes(range(256)) * 4  # 1024 bytes = 16 x 16 float32
    assert EncodedArray.from_raw((16, 16), raw).raw() == raw


def test_resent_message_keeps_its_id():
    assert frame_score().message_id == frame_score().message_id
    assert frame_score(sha256="cd" * 32).message_id != frame_score().message_id


# Computed once (v0.1) from the literal kind strings; never regenerate these to make the test pass.
IDS_SINCE_V0_1 = {
    "frame-score": "frame-score:a147f78c292f820556612942afc5f7f8",
    "frame-rejected": "frame-rejected:523daa442258935de153cdabcbb5c0b9",
    "transient-candidate": "transient-candidate:9fd3e39e9eb4bae4c1d6ec63e7e00af1",
    "frame-searched": "frame-searched:f1900b687f12f96e4d2a2ffe880f47d1",
    "site-heartbeat": "site-heartbeat:61f2ed554ac2129456c690cbddea1f3a",
    "site-config": "site-config:ff2f2038cbdacb358fa93bdcd3df44f9",
    "followup-request": "followup-request:3af668d328bcaccc683f8e56805b1e2c",
    "followup-status": "followup-status:03346f5f8b5b6f98996fb8ad2fd05bdb",
    "model-release": "model-release:a289ffdc0d29d40e6000f853a5538913",
    # Since the follow-up commands were added (2026-12):
    "followup-cancel": "followup-cancel:09e6257db9b9f21fbdf9033622bf346f",
    "followup-priority": "followup-priority:593eb65281d43bae57169c006d2774cb",
}


@pytest.mark.parametrize("kind", MESSAGE_TYPES)
def test_message_ids_do_not_change_across_versions(kind):
    """A message's id is the same in every version of Skyfleet, byte for byte.

    The id is the JetStream `Nats-Msg-Id` that dedupes resends: a site upgraded during an outage
    resends what it queued before the upgrade, and the hub must recognise it as already stored.
    So neither a message class's `KIND` nor the way `stable_message_id` hashes may ever change;
    the literals above guard both.
    """
    model = MESSAGE_TYPES[kind]
    assert stable_message_id(model.KIND, "la-silla", "ab" * 32, "1") == IDS_SINCE_V0_1[kind]


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=str)
def test_a_number_that_is_not_finite_is_rejected_naming_the_field(number):
    data = json.loads(frame_score().model_dump_json())
    data["metrics"]["background_adu"] = number  # json.dumps writes NaN, Infinity, -Infinity
    with pytest.raises(MessageDecodeError) as err:
        decode_message(json.dumps(data).encode(), FrameScore)
    assert err.value.fields == ["metrics.background_adu"]
    assert "finite number" in str(err.value)


def test_a_number_that_is_not_finite_is_rejected_inside_a_mapping_too():
    release = next(m for m in every_message() if isinstance(m, ModelRelease))
    data = json.loads(release.model_dump_json())
    data["metrics"]["accuracy"] = math.nan
    with pytest.raises(MessageDecodeError) as err:
        decode_message(json.dumps(data).encode(), ModelRelease)
    assert err.value.fields == ["metrics.accuracy"]


def test_a_site_cannot_build_a_message_with_a_number_that_is_not_finite():
    metrics = frame_score().metrics.model_dump()
    with pytest.raises(ValidationError, match="background_adu"):
        ImageMetrics(**(metrics | {"background_adu": math.nan}))
