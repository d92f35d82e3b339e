"""Service settings: flags beat environment, environment beats the TOML file, then defaults."""

import pytest
from pydantic import ValidationError

from coordinator.settings import CoordinatorSettings
from fleetbus.settings import SettingsFileError
from site_agent.settings import SiteAgentSettings


def test_defaults_work_without_any_configuration(monkeypatch):
    for name in ("SKYFLEET_DATABASE_URL", "SKYFLEET_SITE_SITE_ID"):
        monkeypatch.delenv(name, raising=False)
    site = SiteAgentSettings.load()
    assert site.nats_url is None  # an embedded server is started
    assert CoordinatorSettings.load().database_url.startswith("sqlite:///")


def test_flags_beat_environment_beat_file(tmp_path, monkeypatch):
    toml = tmp_path / "skyfleet.toml"
    toml.write_text(
        '[site]\nsite_id = "from-file"\nheartbeat_interval_s = 30\nlog_level = "DEBUG"\n'
    )
    monkeypatch.setenv("SKYFLEET_SITE_SITE_ID", "from-env")
    monkeypatch.setenv("SKYFLEET_SITE_HEARTBEAT_INTERVAL_S", "20")
    settings = SiteAgentSettings.load(toml, heartbeat_interval_s=5.0, triton_url=None)
    assert settings.site_id == "from-env"
    assert settings.heartbeat_interval_s == 5.0
    assert settings.log_level == "DEBUG"
    assert settings.triton_url is None


def test_shared_database_url_variable_reaches_the_coordinator(monkeypatch):
    monkeypatch.setenv("SKYFLEET_DATABASE_URL", "postgresql+psycopg://127.0.0.1:5432/test")
    assert CoordinatorSettings.load().database_url.endswith("/test")


def test_invalid_value_names_the_setting():
    with pytest.raises(ValidationError, match="site_id"):
        SiteAgentSettings.load(site_id="Not A Site")


def test_unknown_setting_in_file_is_an_error(tmp_path):
    toml = tmp_path / "skyfleet.toml"
    toml.write_text("[coordinator]\nhttp_prot = 9000\n")
    with pytest.raises(ValidationError, match="http_prot"):
        CoordinatorSettings.load(toml)


def test_malformed_file_names_the_file(tmp_path):
    toml = tmp_path / "broken.toml"
    toml.write_text("[site\n")
    with pytest.raises(SettingsFileError, match=r"broken\.toml"):
        SiteAgentSettings.load(toml)


def test_transient_search_limits_come_from_the_site_table(tmp_path, monkeypatch):
    monkeypatch.delenv("SKYFLEET_SITE_TRANSIENTS", raising=False)
    toml = tmp_path / "skyfleet.toml"
    toml.write_text("[site.transients]\nreal_bogus_threshold = 0.95\nmax_published = 5\n")
    limits = SiteAgentSettings.load(toml).transients
    assert (limits.real_bogus_threshold, limits.max_published) == (0.95, 5)
    assert limits.detection_sigma == SiteAgentSettings().transients.detection_sigma
    monkeypatch.setenv("SKYFLEET_SITE_TRANSIENTS", '{"real_bogus_threshold": 0.7}')
    assert SiteAgentSettings.load(toml).transients.real_bogus_threshold == 0.7


def test_an_impossible_transient_limit_names_the_setting(tmp_path):
    toml = tmp_path / "skyfleet.toml"
    toml.write_text("[site.transients]\nreal_bogus_threshold = 1.5\n")
    with pytest.raises(ValidationError, match=r"transients\.real_bogus_threshold"):
        SiteAgentSettings.load(toml)
