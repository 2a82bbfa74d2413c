"""`--web.config.file`: TLS and basic auth for our own HTTP endpoints, in the exporter-toolkit
format that Prometheus, Alertmanager and node_exporter read (the same file passes
`promtool check web-config`).

Supported: tls_server_config (cert_file, key_file, client_auth_type, client_ca_file,
min_version, max_version), http_server_config.headers, basic_auth_users (bcrypt hashes,
including htpasswd's `$2y$`). Anything else is refused by name rather than silently ignored.
"""

from __future__ import annotations

import re
import ssl
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from exporter.config.base import (
    ConfigError,
    Strict,
    load_yaml,
    read_config_text,
    validate,
)

__all__ = ["ALLOWED_HEADERS", "RotatingServerContext", "WebConfig", "load_web_config"]

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
# Modular crypt format: $2a$, $2b$ or $2y$ (htpasswd), two-digit cost, 22 + 31 characters.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


def _bcrypt_hash(value: object) -> object:
    if isinstance(value, str) and not _BCRYPT_HASH.fullmatch(value):
        raise ValueError("must be a bcrypt hash ($2a$, $2b$ or $2y$), e.g. from htpasswd -nBC 10")
    return value


BcryptHash = Annotated[str, BeforeValidator(_bcrypt_hash)]

# The headers exporter-toolkit lets a web config set, and the values it allows (None: any),
# as `promtool check web-config` enforces them (names and values are case-sensitive there).
ALLOWED_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")  # printable ASCII: no line breaks to inject


def _check_headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if name not in ALLOWED_HEADERS:
            raise ValueError(
                f"HTTP header {name!r} can not be configured (allowed: "
                f"{', '.join(ALLOWED_HEADERS)})"
            )
        allowed = ALLOWED_HEADERS[name]
        if allowed is not None and value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError(f"{name}: only printable ASCII characters, no line breaks")
    return headers


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
    # Sent on every response, 401, 404 and 429 included.
    headers: Annotated[dict[str, str], AfterValidator(_check_headers)] = Field(default_factory=dict)


class WebConfig(Strict):
    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = HttpServerConfig()
    # The hashes are secrets too: never logged, never shown.
    basic_auth_users: dict[str, BcryptHash] = Field(default_factory=dict, repr=False)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A fresh server context, or None for plain HTTP. Raises ConfigError for unreadable
        files. Fresh on every (re)load: `load_verify_locations` only ever adds, so reusing a
        context would keep trusting a CA that was removed from client_ca_file."""
        tls = self.tls_server_config
        if tls is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
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
        return context


class RotatingServerContext(ssl.SSLContext):
    """The context the server listens with: each new connection is set up by the context of
    the latest (re)load, so new certificates, client CAs and version limits apply to new
    connections without a restart, and a removed client CA stops verifying.

    asyncio sets a server connection up with `wrap_bio`; that is handed to the current
    context, whole (verify mode and trust store included, which an SNI callback's context
    switch would not change).
    """

    current: ssl.SSLContext

    def __new__(cls, current: ssl.SSLContext) -> RotatingServerContext:
        self = super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)
        self.current = current
        return self

    def __init__(self, current: ssl.SSLContext) -> None:
        pass  # set up in __new__: ssl.SSLContext takes its protocol there

    def swap(self, context: ssl.SSLContext) -> None:
        self.current = context

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        return self.current.wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        return self.current.wrap_socket(*args, **kwargs)


# A web config is a few lines; anything bigger is a wrong path.
WEB_CONFIG_LIMIT = 1024 * 1024


def load_web_config(path: Path) -> WebConfig:
    """Read and validate a web config file; raise ConfigError naming every problem."""
    text = read_config_text(path, WEB_CONFIG_LIMIT, "the web config")
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
