"""Finding accelerator plugins: edgec's own folder, then EDGEC_PLUGIN_PATH's folders.

A vendor adds a device with one folder holding a Python package that exposes
``PLUGIN`` (an `AcceleratorPlugin`), put on ``EDGEC_PLUGIN_PATH``, and a target
file on ``EDGEC_TARGET_PATH``: no edgec code changes. Packages under
``edgec/accel/plugins`` are the built-in ones (Ethos-U).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from ..errors import UsageError
from .plugin import AcceleratorPlugin

PLUGIN_PATH_ENV = "EDGEC_PLUGIN_PATH"
_BUILTIN = Path(__file__).resolve().parent / "plugins"

#: accelerators people ask for that edgec has no codegen for: listed, never claimed
NOT_SUPPORTED = {
    "tensorrt": "TVM 0.27's wheel ships its pattern table but no codegen (relax.ext.tensorrt)",
    "nnapi": "TVM 0.27's wheel ships its pattern table but no codegen (relax.ext.nnapi)",
    "coreml": "TVM 0.27's wheel ships its pattern table but no codegen (relax.ext.coreml)",
    "clml": "TVM 0.27's wheel ships its pattern table but no codegen (relax.ext.clml)",
}


def _folders() -> list[tuple[Path, str]]:
    """(folder, module prefix) pairs, user folders first so a vendor may override."""
    extra = [(Path(p), "") for p in os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep) if p]
    return [*extra, (_BUILTIN, "edgec.accel.plugins.")]


def _load(folder: Path, prefix: str, name: str) -> AcceleratorPlugin | None:
    if prefix:
        module = importlib.import_module(prefix + name)
    else:
        init = folder / name / "__init__.py"
        if not init.is_file():
            return None
        mod_name = f"edgec_plugin_{name}"
        module = sys.modules.get(mod_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(
                mod_name, init, submodule_search_locations=[str(folder / name)])
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception:
                del sys.modules[mod_name]
                raise
    plugin = getattr(module, "PLUGIN", None)
    return plugin if isinstance(plugin, AcceleratorPlugin) else None


def available() -> dict[str, AcceleratorPlugin]:
    """Every plugin found, by name (the first folder wins a name)."""
    found: dict[str, AcceleratorPlugin] = {}
    for folder, prefix in _folders():
        if not folder.is_dir():
            continue
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()
                          and not p.name.startswith(("_", "."))):
            try:
                plugin = _load(folder, prefix, sub.name)
            except Exception as exc:  # a broken vendor plugin: say which, do not crash
                raise UsageError(f"{sub}: the accelerator plugin does not import "
                                 f"({type(exc).__name__}: {exc}); fix or remove it") from None
            if plugin is not None and plugin.name not in found:
                found[plugin.name] = plugin
    return found


def get(name: str, where: str) -> AcceleratorPlugin:
    """The plugin ``name``; an unknown one is a UsageError naming ``where``."""
    plugins = available()
    if name in plugins:
        return plugins[name]
    why = NOT_SUPPORTED.get(name.lower())
    if why:
        raise UsageError(f"{where}: accelerator '{name}' is not supported: {why}; edgec "
                         "offloads only to devices it has a codegen for "
                         f"({', '.join(sorted(plugins))})")
    raise UsageError(f"{where}: no accelerator plugin '{name}' (found: "
                     f"{', '.join(sorted(plugins)) or 'none'}); put its folder on "
                     f"{PLUGIN_PATH_ENV}")
