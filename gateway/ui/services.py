"""What the dashboard needs beyond the read API: a password login and the subscribers' queue depths."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ui.login import PasswordLogin
from gateway.ui.queues import QueueDepthReader


@dataclass
class UiServices:
    login: PasswordLogin
    queues: QueueDepthReader
