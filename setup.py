"""Maps the checkout's targets/ into the wheel as edgec/bundled_targets.

Everything else about the package is in pyproject.toml. The target files stay
at the top of the repository (they are data users edit), so they need a
package-dir mapping, and each family folder must be listed as a package for
setuptools to ship it without warnings; this lists them from the folder.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

TARGETS = Path(__file__).resolve().parent / "targets"
FAMILIES = sorted(p.name for p in TARGETS.iterdir() if p.is_dir() and p.name.isidentifier())

setup(
    # Namespace discovery so data-only folders (bundle/templates) count as packages too.
    packages=[*find_namespace_packages(include=["edgec", "edgec.*"], exclude=["*.__pycache__"]),
              "edgec.bundled_targets", *(f"edgec.bundled_targets.{f}" for f in FAMILIES)],
    package_dir={"edgec.bundled_targets": "targets"},
)
