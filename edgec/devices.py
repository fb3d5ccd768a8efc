"""Where a remote device is: the one ``--device`` syntax every command shares.

``KEY@HOST:PORT`` asks the TVM RPC tracker at HOST:PORT for a free device
registered under KEY (a farm: any board of that key will do);
``HOST:PORT`` connects straight to one ``edgec device serve``. IPv6 hosts
go in brackets (``[::1]:9090``). Nothing here touches the network or TVM.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .errors import UsageError

_SPEC = re.compile(r"(?:(?P<key>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s\[\]]+):(?P<port>\d+)")
EXAMPLES = "KEY@TRACKER_HOST:PORT (e.g. rpi4@127.0.0.1:9190) or HOST:PORT (e.g. 127.0.0.1:9090)"


@dataclass(frozen=True)
class DeviceAddress:
    """A parsed ``--device``: a tracker and key, or one server (key None)."""

    host: str
    port: int
    key: str | None = None

    @property
    def via_tracker(self) -> bool:
        return self.key is not None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.key}@{self.address}" if self.key else self.address

    def describe(self) -> str:
        """How errors name it: the key and the tracker, or the server."""
        if self.key:
            return f"device '{self.key}' via the tracker at {self.address}"
        return f"the device server at {self.address}"


def parse_device(spec: str, *, option: str = "--device") -> DeviceAddress:
    """``KEY@HOST:PORT`` or ``HOST:PORT`` -> DeviceAddress; a UsageError otherwise."""
    m = _SPEC.fullmatch(spec.strip())
    port = int(m["port"]) if m else -1
    if m is None or not 0 < port < 65536:
        raise UsageError(f"{option} {spec}: give {EXAMPLES}")
    return DeviceAddress(m["host"].strip("[]"), port, m["key"])


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or 'localhost': only this machine can reach it."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
