"""Signed model releases: a version folder carries the fleet's release signature over its
manifest, and a site that was given the fleet's public release key loads nothing else.

A manifest names the sha256 of its artifact, so a signature over the manifest's bytes covers the
artifact too: changing `model.pt` breaks the sha256 check, changing the manifest (a hand-written
one for a model of one's own) breaks the signature. The release key is an nkey (Ed25519, the
same key type as the fleet's identities, `fleetbus.identity`) of the operator kind: its seed
(`SO...`) stays with whoever releases models (training), its public key (`O...`) is given to
every site (`SKYFLEET_SITE_RELEASE_PUBLIC_KEY`).

`signature.json` beside `manifest.json`: `{"public_key": "O...", "signature": "<base64>"}`.
"""

import base64
import binascii
from pathlib import Path

import nkeys
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SIGNATURE_FILE = "signature.json"
SIGNED_FILE = "manifest.json"
RELEASE_PUBLIC_KEY_PATTERN = r"^O[A-Z2-7]{55}$"
NKEY_PUBLIC_BYTES = 35
"""An nkey's public form decoded: one prefix byte, the 32-byte Ed25519 key, a 2-byte checksum."""


class ModelSignatureError(Exception):
    """A version folder whose release signature is missing, malformed or not the fleet's."""


class ReleaseSignature(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    public_key: str = Field(pattern=RELEASE_PUBLIC_KEY_PATTERN)
    signature: str = Field(min_length=1, max_length=512)


def _key_pair(seed: str) -> nkeys.KeyPair:
    try:
        pair = nkeys.from_seed(bytearray(seed.strip().encode()))
    except (nkeys.NkeysError, ValueError, binascii.Error) as exc:
        raise ModelSignatureError(f"not a release key seed ({exc})") from exc
    if not pair.public_key.decode().startswith("O"):
        raise ModelSignatureError("not a release key seed (an operator nkey, SO...)")
    return pair


def _verify_key(public_key: str) -> VerifyKey:
    """The Ed25519 key inside an nkey's public form: base32 of prefix, 32 key bytes, checksum."""
    raw = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    if len(raw) != NKEY_PUBLIC_BYTES or raw[0] != nkeys.PREFIX_BYTE_OPERATOR:
        raise ValueError(f"{public_key[:12]}... is not an operator public nkey")
    return VerifyKey(raw[1:-2])


def sign_version(version_dir: Path, seed: str) -> Path:
    """Sign a version folder's manifest with the release key's seed; returns the signature file."""
    pair = _key_pair(seed)
    signed = (version_dir / SIGNED_FILE).read_bytes()
    signature = ReleaseSignature(
        public_key=pair.public_key.decode(),
        signature=base64.b64encode(pair.sign(signed)).decode(),
    )
    path = version_dir / SIGNATURE_FILE
    path.write_text(signature.model_dump_json(indent=2) + "\n")
    return path


def verify_version(version_dir: Path, release_public_key: str) -> None:
    """Refuse a version folder not signed by `release_public_key` (ModelSignatureError)."""
    path = version_dir / SIGNATURE_FILE
    try:
        signature = ReleaseSignature.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ModelSignatureError(
            f"{version_dir}: not signed (no {SIGNATURE_FILE}); this site loads only models "
            "signed by the fleet's release key"
        ) from None
    except (OSError, ValidationError) as exc:
        raise ModelSignatureError(f"{path}: unusable signature ({exc})") from exc
    if signature.public_key != release_public_key:
        raise ModelSignatureError(
            f"{version_dir}: signed by {signature.public_key[:12]}..., not by the fleet's "
            f"release key {release_public_key[:12]}..."
        )
    try:
        signed = (version_dir / SIGNED_FILE).read_bytes()
        _verify_key(release_public_key).verify(signed, base64.b64decode(signature.signature))
    except (BadSignatureError, binascii.Error, ValueError, OSError) as exc:
        raise ModelSignatureError(
            f"{version_dir}: the release signature does not match its manifest ({exc}); "
            "refusing a model that is not the one released"
        ) from exc
