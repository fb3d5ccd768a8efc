"""Devices over TVM RPC: ``edgec device serve`` on a board, ``--device`` on the build machine.

TVM's RPC server and tracker do the transport (edgec adds no protocol of
its own); edgec adds what a user needs around them: checking an artifact
before it is uploaded, a few functions on the device (its CPU, a per-kernel
profile, LiteRT), timeouts on every call, one-line errors that name the
device, and an aarch64 device emulated under qemu-user (emulated.py).
"""
