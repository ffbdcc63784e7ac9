"""The development users file (see dev-users.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from hl7lake.settings import RootSettings

DEFAULT_FILE = Path(__file__).with_name("dev-users.yaml")


@dataclass(frozen=True)
class DevUser:
    email: str
    password: str
    write: str
    read: str


def users_file() -> Path:
    return Path(RootSettings().dev_users_file or DEFAULT_FILE)


def load_dev_users(path: Path | None = None) -> list[DevUser]:
    data = yaml.safe_load((path or users_file()).read_text(encoding="utf-8")) or {}
    return [
        DevUser(
            email=str(u["email"]),
            password=str(u["password"]),
            write=str(u.get("write") or ""),
            read=str(u.get("read") or ""),
        )
        for u in data.get("users", [])
    ]


def password_for(email: str) -> str | None:
    for user in load_dev_users():
        if user.email.lower() == email.lower():
            return user.password
    return None
