"""Accelerator offload: split a graph between an NPU and the CPU, and say which.

`plugin` is the interface a device implements, `registry` finds plugins,
`partition` splits a graph, `build` turns a split into an artifact's members
and manifest section, `report` shows a split (``edgec inspect --offload``).
The Ethos-U plugin under ``plugins/ethos_u`` is the worked example.
"""
