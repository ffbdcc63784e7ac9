"""MLLP listener settings (environment variables prefixed HL7LAKE_MLLP_).

MLLP carries no credentials, so *where* a connection arrives says who sends: each listener maps
its connections to one source institution, or — with TLS and client certificates — maps each
certificate subject to a source. The default listener is plain TCP on loopback.
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict

from hub.config import LOCALHOST, EnvSettings

MLLP_PORT = 2575
# the institution the default listener's connections send for
MLLP_SOURCE = "hospital-a"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

# short names of the distinguished-name attributes Python's ssl module reports by long name
DN_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "emailAddress": "EMAILADDRESS",
    "domainComponent": "DC",
    "serialNumber": "SERIALNUMBER",
    "userId": "UID",
}
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")

Subject = frozenset[tuple[str, str]]


def parse_subject(text: str) -> Subject:
    """``"CN=lab, O=Hospital A"`` → a set of (TYPE, value): order and blanks around commas ignored."""
    pairs = set()
    for part in _UNESCAPED_COMMA.split(text):
        name, sep, value = part.strip().partition("=")
        if not sep or not name.strip():
            raise ValueError(f"certificate subject {text!r}: {part.strip()!r} is not TYPE=value")
        pairs.add((name.strip().upper(), value.strip().replace("\\,", ",")))
    return frozenset(pairs)


class TlsConfig(BaseModel):
    cert: str  # PEM server certificate (chain)
    key: str  # PEM private key
    ca: str | None = None  # PEM CA bundle: when set, clients must present a certificate it signed
    # certificate subject ("CN=lab-engine,O=Hospital A") → source institution
    subjects: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.subjects and not self.ca:
            raise ValueError("tls.subjects needs tls.ca: client certificates are verified against it")
        for subject in self.subjects:
            parse_subject(subject)
        return self

    def subject_map(self) -> dict[Subject, str]:
        return {parse_subject(subject): source for subject, source in self.subjects.items()}


class ListenerConfig(BaseModel):
    host: str = LOCALHOST
    port: int = Field(ge=0, le=65535)  # 0: any free port (tests)
    # the institution every connection sends for; with tls.subjects the certificate decides
    source: str | None = None
    tls: TlsConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.tls and self.tls.subjects:
            if self.source:
                raise ValueError(
                    "a listener with tls.subjects takes its source from the certificate; drop 'source'"
                )
        elif not self.source:
            raise ValueError("a listener needs a 'source' (or tls.subjects mapping certificates to sources)")
        return self

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    def describe(self) -> str:
        return f"{'mllps' if self.tls else 'mllp'}://{self.host}:{self.port}"


class MllpSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="HL7LAKE_MLLP_", extra="ignore")

    # the default listener: plain TCP, loopback unless told otherwise
    host: str = LOCALHOST
    port: int = Field(default=MLLP_PORT, ge=0, le=65535)
    source: str = MLLP_SOURCE
    # more listeners: a JSON list of {host, port, source, tls: {cert, key, ca, subjects}}
    listeners: list[ListenerConfig] = Field(default_factory=list)
    # no bytes for this long between messages: the connection is closed
    idle_timeout_seconds: float = Field(default=600.0, gt=0)
    # a message whose start block arrived must be complete within this long (also: TLS handshake,
    # writing an ACK the peer does not read)
    read_timeout_seconds: float = Field(default=60.0, gt=0)
    # at this many connections the longest-idle one is closed to admit a new one (a new connection
    # is refused only when every open one is busy with a message)
    max_connections: int = Field(default=64, ge=1)
    # the same per peer address (IP); 0: no per-address limit
    max_connections_per_address: int = Field(default=0, ge=0)
    # on SIGTERM: how long messages in flight get to be acknowledged before connections are cut
    stop_timeout_seconds: float = Field(default=20.0, gt=0)

    def all_listeners(self) -> list[ListenerConfig]:
        return [ListenerConfig(host=self.host, port=self.port, source=self.source), *self.listeners]
