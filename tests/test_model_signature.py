"""Signed model releases: a site given the fleet's release key loads only models signed with it;
a model with a hand-written manifest, another key's signature or an edited manifest is refused."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from fleetbus.identity import FleetIdentities, issue_credentials
from imaging.model_signature import SIGNATURE_FILE, sign_version
from imaging.quality_model import ModelLoadError, QualityModel, write_model
from imaging.shipped_models import SHIPPED_QUALITY_MODEL_DIR, SHIPPED_REALBOGUS_MODEL_DIR
from imaging.transients.realbogus import RealBogusLoadError, RealBogusModel
from skyfleet.cli.main import app
from tests.quality_models import TinyQualityNet


@pytest.fixture
def fleet_keys(tmp_path):
    """A fleet's credentials: the release seed and its public key."""
    keys = tmp_path / "keys"
    issue_credentials(keys, ["a"])
    return (keys / "release.nk").read_text(), FleetIdentities.load(keys).release_public_key


def shipped_copy(tmp_path, repository=SHIPPED_QUALITY_MODEL_DIR):
    version = max((d for d in repository.iterdir() if d.name.isdigit()), key=lambda d: int(d.name))
    copy = tmp_path / "model" / version.name
    shutil.copytree(version, copy)
    (copy / SIGNATURE_FILE).unlink(missing_ok=True)
    return copy


def test_a_signed_model_loads_and_reports_the_same_identity(tmp_path, fleet_keys):
    seed, public = fleet_keys
    version = shipped_copy(tmp_path)
    sign_version(version, seed)
    assert QualityModel.load(version, public).ref == QualityModel.load(version).ref


def test_a_model_with_a_hand_written_manifest_is_refused(tmp_path, fleet_keys):
    _, public = fleet_keys
    impostor = tmp_path / "impostor" / "1"
    write_model(TinyQualityNet(), impostor, name="quality", version="1")  # sha256 all right
    QualityModel.load(impostor)  # what a site without the release key would accept
    with pytest.raises(ModelLoadError, match="not signed"):
        QualityModel.load(impostor, public)


def test_another_keys_signature_and_an_edited_manifest_are_refused(tmp_path, fleet_keys):
    seed, public = fleet_keys
    other = tmp_path / "other"
    issue_credentials(other, [])
    other_seed = (other / "release.nk").read_text()
    version = shipped_copy(tmp_path)
    sign_version(version, other_seed)
    with pytest.raises(ModelLoadError, match="not by the fleet's release key"):
        QualityModel.load(version, public)
    sign_version(version, seed)
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["version"] = "99"
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="does not match its manifest"):
        QualityModel.load(version, public)


def test_the_real_bogus_model_is_held_to_the_same_rule(tmp_path, fleet_keys):
    seed, public = fleet_keys
    version = shipped_copy(tmp_path, SHIPPED_REALBOGUS_MODEL_DIR)
    with pytest.raises(RealBogusLoadError, match="not signed"):
        RealBogusModel.load(version, public)
    sign_version(version, seed)
    assert (
        RealBogusModel.load(version, public).ref.sha256 == RealBogusModel.load(version).ref.sha256
    )


def test_the_sign_command_signs_with_the_fleets_release_key(tmp_path):
    runner = CliRunner()
    keys = tmp_path / "keys"
    made = runner.invoke(app, ["fleet", "credentials", "--out", str(keys), "--site", "a"])
    assert made.exit_code == 0 and "SKYFLEET_SITE_RELEASE_PUBLIC_KEY=O" in made.output
    version = shipped_copy(tmp_path)
    signed = runner.invoke(app, ["fleet", "sign-model", str(version), "--out", str(keys)])
    assert signed.exit_code == 0, signed.output
    QualityModel.load(version, FleetIdentities.load(keys).release_public_key)
    missing = runner.invoke(app, ["fleet", "sign-model", str(version), "--out", str(tmp_path)])
    assert missing.exit_code == 1 and "release.nk" in missing.output
