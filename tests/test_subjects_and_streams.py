"""Subjects and stream definitions come from protos and agree with each other."""

import pytest

from protos.streams import central_streams, fleet_stream, site_stream
from protos.subjects import (
    all_site_events,
    dead_letter,
    kind_of_subject,
    site_commands,
    site_of_subject,
    subject_for,
    subject_for_kind,
)
from tests.examples import every_message


def test_site_messages_go_under_the_site_and_commands_under_cmd():
    for message in every_message("la-silla"):
        subject = subject_for(message)
        is_command = message.KIND in {
            "followup-request",
            "followup-cancel",
            "followup-priority",
            "model-release",
        }
        root = "fleet.cmd.la-silla." if is_command else "fleet.site.la-silla."
        assert subject.startswith(root), subject
        assert kind_of_subject(subject) == message.KIND
        assert site_of_subject(subject) == "la-silla"


@pytest.mark.parametrize("bad", ["", "a.b", "*", ">", "Upper", "has space", "x" * 40])
def test_subject_builders_refuse_bad_site_ids(bad):
    with pytest.raises(ValueError, match="site_id"):
        subject_for_kind("frame-score", bad)


def test_dead_letter_subject_refuses_wildcards():
    with pytest.raises(ValueError):
        dead_letter("a.>")


def test_site_stream_holds_exactly_the_sites_subjects():
    spec = site_stream("la-silla")
    assert spec.name == "SITE_LA_SILLA"
    assert spec.subjects == ["fleet.site.la-silla.>"]
    assert spec.duplicate_window_s >= 3600


def test_hub_stream_sources_site_streams_from_their_domains():
    spec = fleet_stream(["la-silla", "siding-spring"])
    assert spec.subjects == []
    assert [(s.name, s.api_prefix) for s in spec.sources] == [
        ("SITE_LA_SILLA", "$JS.site-la-silla.API"),
        ("SITE_SIDING_SPRING", "$JS.site-siding-spring.API"),
    ]


def test_central_streams_cover_site_events_and_commands():
    subjects = {s for spec in central_streams() for s in spec.subjects}
    assert all_site_events() in subjects
    assert any(site_commands("x").startswith(s.rstrip(">")) for s in subjects)
