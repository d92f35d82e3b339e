"""`skyfleet demo --fast --json`: a short scripted night of the whole fleet on this machine, with
real nats-server processes, site agents, the coordinator and its console."""

import json
import subprocess

import pytest

from tests.conftest import SKYFLEET


@pytest.mark.slow
def test_fast_demo_runs_a_scripted_night_and_prints_what_the_fleet_did(tmp_path):
    result = subprocess.run(
        [str(SKYFLEET), "demo", "--fast", "--json", "--work-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert not summary["cut_short"], "the scripted night did not finish in its time limit"
    sites = {site["site_id"]: site for site in summary["sites"]}
    assert set(sites) == {"teide", "lasilla", "sidingspring"}
    fleet = summary["coordinator"]
    by_site = {site["site_id"]: site for site in fleet["sites"]}
    for site_id, site in sites.items():
        assert site["frames_written"] >= 8
        assert site["frames_scored"] + site["frames_rejected"] == site["frames_written"]
        # the coordinator counted exactly what each site scored, by label
        seen = by_site[site_id]
        assert seen["frames"] == site["frames_scored"]
        assert {k: seen[k] for k in ("good", "medium", "bad")} == {
            label: site["labels"].get(label, 0) for label in ("good", "medium", "bad")
        }
        assert seen["lat_deg"] is not None  # the site described itself (SiteConfig)
    assert fleet["candidates"] == sum(site["candidates"] for site in sites.values())
    # the demo sky's transients are seen by several sites and fused into one target each
    assert fleet["multi_site_targets"] >= 1
    # a follow-up went to a site's Alpaca telescope, was exposed there and reported done
    assert fleet["followups"].get("done", 0) >= 1
    assert sum(site["followups_observed"] for site in sites.values()) >= 1
    assert sum(site["followup_exposures"] for site in sites.values()) >= 3  # a plan's count
    # the targets followed up are sources (seen in two frames or at two sites), never single
    # noise detections, which stay candidates
    assert fleet["targets_by_status"].get("source", 0) >= 1
    assert set(fleet["followed_targets_by_status"]) == {"source"}
    assert summary["console_url"].startswith("http://127.0.0.1:")
