"""One settings object for the whole platform.

Built once in `cli.py` and passed down; nothing reads the environment at import time.
Sources, strongest first: explicit keyword arguments, `SAFECITY_*` environment variables,
a TOML file (`SAFECITY_CONFIG_FILE` or `--config`), then the defaults below.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Role = Literal["all", "receivers", "workers", "api"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAFECITY_", extra="forbid", validate_default=True)

    config_file: Path | None = Field(default=None, description="TOML file with these settings")
    data_dir: Path = Field(default=Path("data"), description="SQLite files, keys and other local state")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: SQLite file in data_dir (postgresql+asyncpg://… for production)",
    )
    bus_url: str | None = Field(
        default=None,
        description="Event log: default SQLite file in data_dir; nats://host:4222 selects NATS JetStream",
    )
    http_host: str = Field(default="127.0.0.1", description="API bind address")
    http_port: int = Field(default=8080, ge=0, le=65535, description="API port")
    dc09_host: str = Field(default="127.0.0.1", description="DC-09 receiver bind address")
    dc09_port: int = Field(default=12128, ge=0, le=65535, description="DC-09 receiver port (TCP and UDP)")
    osmand_host: str = Field(default="127.0.0.1", description="OsmAnd/Traccar Client HTTP receiver bind address")
    osmand_port: int = Field(default=5055, ge=0, le=65535, description="OsmAnd/Traccar Client HTTP receiver port")
    mqtt_url: str | None = Field(
        default=None,
        description="MQTT broker for unit positions, mqtt://[user:pass@]host:1883; unset = MQTT receiver off",
    )
    mqtt_client_id: str = Field(
        default="safecity-positions",
        description="fixed MQTT client id: the broker keeps the persistent session's unacked messages",
    )
    map_tile_url: str | None = Field(
        default=None,
        description="external raster tiles ({z}/{x}/{y}) under the map; unset = no request leaves the platform",
    )
    jwt_secret: SecretStr | None = Field(
        default=None, description="HMAC key for access tokens; default: generated once into data_dir"
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="bearer token Prometheus must send to /metrics; unset = open (loopback)"
    )
    access_token_ttl_s: int = Field(default=900, gt=0, description="access token lifetime")
    refresh_token_ttl_s: int = Field(default=12 * 3600, gt=0, description="refresh token lifetime (a shift)")
    login_max_failures: int = Field(default=5, gt=0, description="failed logins before lockout")
    login_lockout_s: int = Field(default=900, gt=0, description="lockout duration")
    nats_stream_replicas: int = Field(default=1, ge=1, le=5, description="JetStream replicas (3 in production)")
    nats_duplicate_window_s: int = Field(default=7200, gt=0, description="JetStream dedup window")
    event_retention_days: int = Field(default=400, gt=0, description="how long the event log keeps events")
    alarm_retention_days: int = Field(default=400, gt=0, description="how long closed alarms and signals are kept")
    audit_retention_days: int = Field(default=3650, gt=0, description="how long audit records are kept")
    dispatch_auto_assign_p1: bool = Field(
        default=False, description="assign a P1 incident from an alarm to the best recommended unit at once"
    )
    log_level: str = Field(default="INFO", description="logging level")
    log_json: bool = Field(default=False, description="log as JSON lines instead of key=value")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFromPointer(settings_cls, init_settings, env_settings))

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'safecity.db'}"

    @property
    def effective_bus_url(self) -> str:
        return self.bus_url or f"sqlite:///{self.data_dir / 'events.db'}"

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def jwt_key(self) -> str:
        """The token signing key: configured, or generated once and kept in data_dir (mode 0600)."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        self.ensure_data_dir()
        path = self.data_dir / "jwt.key"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip()

    def masked(self) -> dict[str, Any]:
        """Effective settings for display, secrets and URL passwords hidden."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            elif name.endswith("_url"):
                value = _mask_url_password(value)
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        out["effective_database_url"] = _mask_url_password(self.effective_database_url)
        out["effective_bus_url"] = _mask_url_password(self.effective_bus_url)
        return out


def _mask_url_password(url: str | None) -> str | None:
    if not url or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:********@{host}" if ":" in creds else url


class _TomlFromPointer(PydanticBaseSettingsSource):
    """Reads the TOML file named by `config_file` (given explicitly or via SAFECITY_CONFIG_FILE)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        init: PydanticBaseSettingsSource,
        env: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self._init = init
        self._env = env

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        pointer = self._init().get("config_file") or self._env().get("config_file")
        if not pointer:
            return {}
        path = Path(pointer)
        if not path.is_file():
            raise FileNotFoundError(f"settings file not found: {path}")
        data: dict[str, Any] = TomlConfigSettingsSource(self.settings_cls, toml_file=path)()
        return data
