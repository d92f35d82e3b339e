"""The base of every service's settings: flags, then `SKYFLEET_*` environment, then an
optional TOML file, then defaults that work on a laptop.

A service subclasses `ServiceSettings`, sets its own `env_prefix` (e.g. `SKYFLEET_SITE_`) and
`toml_table` (e.g. `site`), and builds itself with `load(toml_file, **flags)`.
"""

import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict


class SettingsFileError(ValueError):
    """The TOML settings file is missing, unreadable or malformed."""


def read_toml_table(path: Path, table: str) -> dict[str, Any]:
    """The `[table]` of a TOML file (empty if the file has no such table)."""
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SettingsFileError(f"settings file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsFileError(f"settings file {path} is not valid TOML: {exc}") from None
    section = document.get(table, {})
    if not isinstance(section, dict):
        raise SettingsFileError(f"settings file {path}: [{table}] must be a table")
    return section


class ServiceSettings(BaseSettings):
    """Settings every service has."""

    model_config = SettingsConfigDict(env_prefix="SKYFLEET_", extra="forbid")
    toml_table: ClassVar[str] = "skyfleet"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @classmethod
    def load(cls, toml_file: Path | None = None, **flags: Any) -> Self:
        """Build the settings: flags (not None) > environment > TOML file > defaults."""
        from_file = read_toml_table(toml_file, cls.toml_table) if toml_file else {}
        from_env = EnvSettingsSource(cls)()
        given = {key: value for key, value in flags.items() if value is not None}
        return cls(**{**from_file, **from_env, **given})
