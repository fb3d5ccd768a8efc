"""``edgec device list``: what a TVM RPC tracker has, per key: total, free and busy boards."""

from __future__ import annotations

import socket

from ...devices import DeviceAddress
from ...errors import DeviceError
from .client import _Deadline, _reason, deadline


def list_devices(address: DeviceAddress, *, timeout: float = 10.0) -> dict:
    """{"tracker": "HOST:PORT", "keys": [{key, total, free, busy, pending, servers}]}.

    A board in a session is busy: it is registered but not free. ``pending``
    counts requests waiting for a board of that key."""
    from tvm import rpc

    where = f"the tracker at {address.address}"
    try:  # TVM's tracker client retries a refused connection for a minute
        socket.create_connection((address.host, address.port), timeout=timeout).close()
    except OSError as exc:
        raise DeviceError(f"{where}: no tracker answers ({exc}); start one with 'edgec "
                          "device tracker'") from None
    try:
        with deadline(timeout):
            summary = rpc.connect_tracker(address.host, address.port).summary()
    except _Deadline:
        raise DeviceError(f"{where}: no answer within {timeout:g} s") from None
    except Exception as exc:
        raise DeviceError(f"{where}: {_reason(exc)}; start one with 'edgec device "
                          "tracker'") from None
    servers: dict[str, list[str]] = {}
    for item in summary.get("server_info", []):
        kind, _, key = str(item.get("key", "")).partition(":")
        if kind == "server" and key:
            host, port = item.get("addr", ("?", "?"))[:2]
            servers.setdefault(key, []).append(f"{host}:{port}")
    keys = []
    queues = summary.get("queue_info", {})
    for key in sorted(set(queues) | set(servers)):
        q = queues.get(key, {})
        total, free = len(servers.get(key, [])), int(q.get("free", 0))
        keys.append({"key": key, "total": total, "free": free, "busy": max(0, total - free),
                     "pending": int(q.get("pending", 0)), "servers": sorted(servers.get(key, []))})
    return {"tracker": address.address, "keys": keys}


def require_key(address: DeviceAddress, *, timeout: float = 10.0) -> dict:
    """The row of ``list_devices`` for ``address.key``; a DeviceError naming the
    registered keys when the tracker has none of it."""
    keys = {k["key"]: k for k in list_devices(address, timeout=timeout)["keys"]}
    if address.key not in keys:
        known = ", ".join(sorted(keys)) or "none"
        raise DeviceError(f"{address.describe()}: no device with key '{address.key}' is "
                          f"registered (keys: {known}); check the key, or start one with "
                          f"'edgec device serve --tracker {address.address} --key "
                          f"{address.key}'")
    return keys[address.key]
