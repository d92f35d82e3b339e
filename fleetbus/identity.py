"""Fleet identity: one NATS nkey per site and per central role, and what each may do on the hub.

Every party that talks to the hub proves who it is with an nkey (an Ed25519 key pair; the hub
keeps only the public key, the party keeps its seed in a file only it can read):
- a **site**: its leaf server authenticates the leaf link with the site's seed. The hub lets the
  link carry out only the site's own messages (`fleet.site.<id>.>`, copied by the hub's sourcing
  from the site's stream), the replies of its own JetStream domain, and its own command consumer
  on the hub (`site-<id>-commands`, filtered to `fleet.cmd.<id>.>`); into the site it lets only
  the hub's requests to the site's JetStream domain and their flow control. A site cannot publish
  as another site, send a command, read another site's commands or touch the hub's JetStream
  API beyond its consumer (no purge, delete or consumer elsewhere).
- the **coordinator**: owns the hub's streams (JetStream API in the hub's own domain and the
  sites' stream info through their domains), reads every site's messages, publishes commands and
  dead letters; it may not publish as a site.
- **training**: publishes model releases (`fleet.cmd.*.model.release`) and reads the fleet.
- **operator** tools: read the fleet (stream info, messages), nothing else.

Local clients of a site's own leaf server (the agent on the same computer) need no key: that
server listens on loopback only. `FleetIdentities` is the record of who exists (public keys only),
kept as `identities.json` beside the seeds; `hub_authorization` renders the hub's
`authorization` block from it, which the hub's configuration includes, so adding or revoking a
site rewrites that file and a reload of the hub (SIGHUP) applies it without restarting anyone.
Permissions tested against a real nats-server: `tests/test_fleet_identity.py`.
"""

import json
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import nkeys
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protos.base import SITE_ID_PATTERN
from protos.streams import COMMAND_STREAM, HUB_JS_DOMAIN, site_command_consumer, site_domain
from protos.subjects import all_commands, all_dead_letters, site_commands, site_events

IDENTITIES_FILE = "identities.json"
HUB_AUTH_FILE = "hub-auth.conf"
COORDINATOR_SEED_FILE = "coordinator.nk"
RELEASE_SEED_FILE = "release.nk"
"""The seed that signs model releases (`imaging.model_signature`): for whoever releases models."""
SEED_SUFFIX = ".nk"
PUBLIC_KEY_PATTERN = r"^U[A-Z2-7]{55}$"
SEED_BYTES = 32
"""An Ed25519 seed is 32 random bytes."""
SECRET_FILE_MODE = 0o600
"""Seeds are readable by their owner only (nats-server's and ssh's convention)."""


class CredentialsError(ValueError):
    """A seed or identities file that cannot be used, named with the reason."""


class Role(StrEnum):
    SITE = "site"
    COORDINATOR = "coordinator"
    TRAINING = "training"
    OPERATOR = "operator"


class Identity(BaseModel):
    """One party of the fleet: its role, its site (for a site) and its public key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    site_id: str | None = Field(default=None, pattern=SITE_ID_PATTERN)
    public_key: str = Field(pattern=PUBLIC_KEY_PATTERN)

    @property
    def name(self) -> str:
        return identity_name(self.role, self.site_id)


def identity_name(role: Role, site_id: str | None = None) -> str:
    """An identity's name, the stem of its seed file: `site-<id>` or the role."""
    return f"site-{site_id}" if role is Role.SITE else role.value


class FleetIdentities(BaseModel):
    """Who may connect to the hub (public keys only: nothing here is secret)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    identities: list[Identity] = Field(default_factory=list)
    release_public_key: str | None = Field(
        default=None,
        pattern=r"^O[A-Z2-7]{55}$",
        description="The public half of the release key that signs models (sites check it).",
    )

    @classmethod
    def load(cls, folder: Path) -> Self:
        path = folder / IDENTITIES_FILE
        if not path.exists():
            return cls()
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            raise CredentialsError(f"{path}: not a fleet identities file ({exc})") from exc

    def save(self, folder: Path) -> None:
        (folder / IDENTITIES_FILE).write_text(self.model_dump_json(indent=2) + "\n")

    def site_ids(self) -> list[str]:
        return sorted(i.site_id for i in self.identities if i.site_id is not None)

    def without_site(self, site_id: str) -> Self:
        kept = [i for i in self.identities if i.site_id != site_id]
        return self.model_copy(update={"identities": kept})

    def has(self, name: str) -> bool:
        return any(i.name == name for i in self.identities)


def new_seed() -> tuple[str, str]:
    """A fresh user key pair: (seed, public key)."""
    seed = nkeys.encode_seed(os.urandom(SEED_BYTES), nkeys.PREFIX_BYTE_USER).decode()
    return seed, public_key_of(seed)


def new_release_key() -> tuple[str, str]:
    """A fresh release (operator) key pair: (seed `SO...`, public key `O...`)."""
    seed = nkeys.encode_seed(os.urandom(SEED_BYTES), nkeys.PREFIX_BYTE_OPERATOR).decode()
    return seed, nkeys.from_seed(bytearray(seed.encode())).public_key.decode()


def public_key_of(seed: str) -> str:
    """The public key of a user seed; CredentialsError if it is not one."""
    if not re.fullmatch(r"SU[A-Z2-7]{56}", seed):
        raise CredentialsError("not a NATS user nkey seed (58 characters starting with SU)")
    try:
        return str(nkeys.from_seed(bytearray(seed.encode())).public_key.decode())
    except nkeys.NkeysError as exc:
        raise CredentialsError(f"not a valid NATS user nkey seed ({exc})") from exc


def read_seed(path: Path) -> str:
    """The seed in a `.nk` file, checked; CredentialsError naming the file otherwise."""
    try:
        seed = path.read_text().strip()
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read the nkey seed ({exc.strerror})") from exc
    try:
        public_key_of(seed)
    except CredentialsError as exc:
        raise CredentialsError(f"{path}: {exc}") from exc
    return seed


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    with os.fdopen(fd, "w") as stream:
        stream.write(text)
    path.chmod(SECRET_FILE_MODE)


def _site_permissions(site_id: str) -> dict[str, Any]:
    consumer = site_command_consumer(site_id)
    hub_api = f"$JS.{HUB_JS_DOMAIN}.API"
    return {
        # leaf -> hub: what the site's link may carry to the centre
        "publish": {
            "allow": [
                site_events(site_id),
                "_INBOX.>",  # replies to the hub's requests
                "$JS.S.>",  # the hub's sourcing: deliveries from the site's stream
                "$JSC.R.>",  # replies to the hub's consumer creation in the site's domain
                f"{hub_api}.INFO",  # the agent's link probe
                f"{hub_api}.CONSUMER.CREATE.{COMMAND_STREAM}.{consumer}.{site_commands(site_id)}",
                f"{hub_api}.CONSUMER.INFO.{COMMAND_STREAM}.{consumer}",
                f"{hub_api}.CONSUMER.MSG.NEXT.{COMMAND_STREAM}.{consumer}",
                f"$JS.ACK.{COMMAND_STREAM}.{consumer}.>",
            ]
        },
        # hub -> leaf: what the centre may send into the site
        "subscribe": {
            "allow": ["_INBOX.>", f"$JS.{site_domain(site_id)}.API.>", "$JS.FC.>"],
        },
    }


def _coordinator_permissions() -> dict[str, Any]:
    return {
        "publish": {
            "allow": [
                all_commands(),
                all_dead_letters(),
                "$JS.API.>",
                f"$JS.{HUB_JS_DOMAIN}.API.>",
                "$JS.*.API.STREAM.INFO.*",  # is a site's stream answering (the source keeper)
                "$JS.ACK.>",
                "$JS.FC.>",
                "_INBOX.>",
            ]
        },
        "subscribe": {"allow": ["_INBOX.>", "fleet.>", "$JS.S.>"]},
    }


def _training_permissions() -> dict[str, Any]:
    return {
        "publish": {
            "allow": [
                "fleet.cmd.*.model.release",
                "$JS.API.INFO",
                "$JS.API.STREAM.INFO.*",
                "$JS.API.STREAM.MSG.GET.*",
                "$JS.API.DIRECT.GET.>",
                "$JS.API.STREAM.CREATE.OBJ_*",
                "$JS.API.STREAM.UPDATE.OBJ_*",
                "$JS.API.STREAM.PURGE.OBJ_*",
                "$JS.API.CONSUMER.CREATE.OBJ_*.>",
                "$JS.API.CONSUMER.DELETE.OBJ_*.>",
                "$O.>",
                "$JS.ACK.>",
                "_INBOX.>",
            ]
        },
        "subscribe": {"allow": ["_INBOX.>", "$O.>"]},
    }


def _operator_permissions() -> dict[str, Any]:
    return {
        "publish": {
            "allow": [
                "$JS.API.INFO",
                "$JS.API.STREAM.INFO.*",
                "$JS.API.STREAM.NAMES",
                "$JS.API.STREAM.LIST",
                "$JS.API.STREAM.MSG.GET.*",
                "$JS.API.DIRECT.GET.>",
                "_INBOX.>",
            ]
        },
        "subscribe": {"allow": ["_INBOX.>"]},
    }


def permissions_for(identity: Identity) -> dict[str, Any]:
    """What the hub lets this identity publish and subscribe to."""
    if identity.role is Role.SITE:
        assert identity.site_id is not None  # a site identity always has one (issue_credentials)
        return _site_permissions(identity.site_id)
    return {
        Role.COORDINATOR: _coordinator_permissions,
        Role.TRAINING: _training_permissions,
        Role.OPERATOR: _operator_permissions,
    }[identity.role]()


def hub_authorization(identities: FleetIdentities) -> str:
    """The hub's `authorization` block (nats-server's format; JSON values are valid in it)."""
    users = [
        f"    # {identity.name}\n"
        f"    {{ nkey: {json.dumps(identity.public_key)}, "
        f"permissions: {json.dumps(permissions_for(identity))} }}"
        for identity in identities.identities
    ]
    return "authorization {\n  users = [\n" + ",\n".join(users) + "\n  ]\n}\n"


class IssuedCredentials(BaseModel):
    """What `issue_credentials` wrote."""

    folder: Path
    created: list[str]
    kept: list[str]
    hub_auth: Path


CENTRAL_ROLES = (Role.COORDINATOR, Role.TRAINING, Role.OPERATOR)


def issue_credentials(folder: Path, site_ids: list[str]) -> IssuedCredentials:
    """Keys for the central roles and these sites in `folder`, keeping every key already there.

    Writes one seed file per new identity (`<name>.nk`, mode 0600), the model release key
    (`release.nk`) once, `identities.json` (public keys) and the hub's `hub-auth.conf`. Running it
    again with another site adds that site.
    """
    for site_id in site_ids:
        if not re.fullmatch(SITE_ID_PATTERN, site_id):
            raise CredentialsError(
                f"not a site id: {site_id!r} (lower-case letters, digits and '-', as in subjects)"
            )
    folder.mkdir(parents=True, exist_ok=True)
    known = FleetIdentities.load(folder)
    wanted: list[tuple[Role, str | None]] = [(role, None) for role in CENTRAL_ROLES]
    wanted += [(Role.SITE, site_id) for site_id in site_ids]
    identities = list(known.identities)
    created: list[str] = []
    kept: list[str] = []
    for role, site in wanted:
        name = identity_name(role, site)
        if known.has(name):
            kept.append(name)
            continue
        seed, public_key = new_seed()
        _write_secret(folder / f"{name}{SEED_SUFFIX}", seed + "\n")
        identities.append(Identity(role=role, site_id=site, public_key=public_key))
        created.append(name)
    release_public_key = known.release_public_key
    if release_public_key is None:
        release_seed, release_public_key = new_release_key()
        _write_secret(folder / RELEASE_SEED_FILE, release_seed + "\n")
        created.append("release")
    record = FleetIdentities(identities=identities, release_public_key=release_public_key)
    record.save(folder)
    hub_auth = write_hub_authorization(folder, record)
    return IssuedCredentials(folder=folder, created=created, kept=kept, hub_auth=hub_auth)


def write_hub_authorization(folder: Path, identities: FleetIdentities) -> Path:
    path = folder / HUB_AUTH_FILE
    path.write_text(hub_authorization(identities))
    return path


def revoke_site(folder: Path, site_id: str) -> Path:
    """Remove a site's identity and its seed; returns the rewritten hub authorization file."""
    known = FleetIdentities.load(folder)
    if site_id not in known.site_ids():
        raise CredentialsError(f"{folder}: no site {site_id!r} to revoke")
    remaining = known.without_site(site_id)
    remaining.save(folder)
    (folder / f"site-{site_id}{SEED_SUFFIX}").unlink(missing_ok=True)
    return write_hub_authorization(folder, remaining)
