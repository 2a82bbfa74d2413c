"""`--web.config.file`: TLS and basic auth for our own HTTP endpoints, in the exporter-toolkit
format that Prometheus, Alertmanager and node_exporter read (the same file passes
`promtool check web-config`).

Supported: tls_server_config (cert_file, key_file, client_auth_type, client_ca_file,
min_version, max_version), http_server_config.headers, basic_auth_users (bcrypt hashes,
including htpasswd's `$2y$`). Anything else is refused by name rather than silently ignored.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ssl
import warnings
from pathlib import Path
from typing import Annotated, Literal, Self

import bcrypt
from pydantic import BeforeValidator, Field, model_validator

from exporter.config.base import (
    ConfigError,
    Strict,
    UnreadableFile,
    load_yaml,
    read_bounded,
    validate,
)

__all__ = ["BasicAuth", "WebConfig", "load_web_config"]

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,  # Python cannot ask without verifying: closest
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_BCRYPT_PREFIXES = (b"$2a$", b"$2b$", b"$2y$")


def _bcrypt_hash(value: object) -> object:
    if isinstance(value, str) and not value.encode().startswith(_BCRYPT_PREFIXES):
        raise ValueError("must be a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from htpasswd -nBC 10")
    return value


BcryptHash = Annotated[str, BeforeValidator(_bcrypt_hash)]


class TlsServerConfig(Strict):
    cert_file: Path
    key_file: Path
    client_auth_type: Literal[
        "NoClientCert",
        "RequestClientCert",
        "RequireAnyClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ] = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS13"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if _TLS_VERSIONS[self.min_version] > _TLS_VERSIONS[self.max_version]:
            raise ValueError(
                f"min_version {self.min_version} is above max_version {self.max_version}"
            )
        if self.client_auth_type != "NoClientCert" and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        return self


class HttpServerConfig(Strict):
    headers: dict[str, str] = Field(default_factory=dict)


class WebConfig(Strict):
    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = HttpServerConfig()
    # The hashes are secrets too: never logged, never shown.
    basic_auth_users: dict[str, BcryptHash] = Field(default_factory=dict, repr=False)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server context, or None for plain HTTP. Raises ConfigError for unreadable files."""
        if self.tls_server_config is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.apply_tls(context)
        return context

    def apply_tls(self, context: ssl.SSLContext) -> None:
        """Load certificates and limits into `context`; the running server's context can be
        updated in place, so a reload rotates certificates without a restart."""
        tls = self.tls_server_config
        assert tls is not None
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
            if tls.client_ca_file is not None:
                context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                [f"tls_server_config: cannot load the certificates: {error}"]
            ) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS10/11 only if asked for
            context.minimum_version = _TLS_VERSIONS[tls.min_version]
            context.maximum_version = _TLS_VERSIONS[tls.max_version]
        context.verify_mode = _CLIENT_AUTH[tls.client_auth_type]


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes.

    bcrypt costs ~50 ms by design: checks run in a worker thread so the event loop (and every
    other scrape) never waits on one, and recent answers are remembered so a scraper with the
    right password pays once, not on every scrape.
    """

    def __init__(self, users: dict[str, str]) -> None:
        self._users = {name: hashed.encode() for name, hashed in users.items()}
        self._answers: dict[tuple[str, str], bool] = {}

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    async def allows(self, user: str, password: str) -> bool:
        # Keyed by a digest, so the cache never holds a password.
        key = (user, hashlib.sha256(password.encode()).hexdigest())
        answer = self._answers.get(key)
        if answer is None:
            answer = await asyncio.to_thread(self._verify, user, password)
            if len(self._answers) >= 256:
                self._answers.clear()
            self._answers[key] = answer
        return answer

    def _verify(self, user: str, password: str) -> bool:
        hashed = self._users.get(user)
        if hashed is None:
            # Spend the same time on unknown users, so timing does not tell who exists.
            bcrypt.checkpw(password.encode(), _dummy_hash())
            return False
        return bcrypt.checkpw(password.encode(), hashed)


@functools.cache
def _dummy_hash() -> bytes:
    # Made on first use: a bcrypt hash costs ~50 ms, too much to pay at every import.
    return bcrypt.hashpw(b"unused", bcrypt.gensalt(10))


# A web config is a few lines; anything bigger is a wrong path.
WEB_CONFIG_LIMIT = 1024 * 1024


def load_web_config(path: Path) -> WebConfig:
    """Read and validate a web config file; raise ConfigError naming every problem."""
    try:
        text = read_bounded(path, WEB_CONFIG_LIMIT).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: cannot read the web config: not UTF-8 text"]) from None
    except UnreadableFile as error:
        raise ConfigError([f"{path}: cannot read the web config: {error.reason}"]) from None
    data = load_yaml(text, str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    base = path.parent
    tls = data.get("tls_server_config")
    if isinstance(tls, dict):
        for key in ("cert_file", "key_file", "client_ca_file"):
            if isinstance(tls.get(key), str):
                tls[key] = str(base / tls[key])
    # exporter-toolkit fields we do not implement are refused too, hence "unsupported".
    config = validate(WebConfig, data, source=str(path), unknown="unknown or unsupported field")
    config.ssl_context()  # unreadable certificates are a start-up error, not a runtime one
    return config
