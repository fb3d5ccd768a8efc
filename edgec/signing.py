"""Signed artifacts: ed25519 keys, signing a manifest, and the keys a device trusts.

The sha256 of every member catches corruption, not a malicious author: a
library replaced and its manifest re-hashed passes them. A signature closes
that gap. ``edgec compile --sign KEY`` (or ``edgec sign``) signs the exact
bytes of ``manifest.json``, which carry every other member's sha256, and
stores the signature as the member ``signature.ed25519`` (not listed in the
manifest, which it signs). ``run``/``verify``/``profile``/``bundle``/
``inspect --trust KEYS`` (or ``EDGEC_TRUST``) then refuse, before any
library is extracted or loaded, an artifact that is unsigned, whose
signature does not verify, or that a key outside the trusted set signed.

Keys are Ed25519 (the ``cryptography`` package): ``edgec keygen NAME``
writes ``NAME.key`` (PKCS#8 PEM, mode 0600, never overwritten) and
``NAME.pub`` (SubjectPublicKeyInfo PEM). OpenSSH ed25519 keys are read too.
A key's id is the first 16 hex digits of the sha256 of its 32 raw public
bytes; it names the key in the signature, in messages and in ``inspect``.

The signed message is ``CONTEXT + manifest bytes``, so an edgec signature
cannot be replayed as a signature over anything else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ArtifactError, UsageError

#: the artifact member holding the signature
SIGNATURE = "signature.ed25519"
ALGORITHM = "ed25519"
#: domain separation: what is signed is CONTEXT + the manifest's bytes
CONTEXT = b"edgec-artifact-manifest-v1\0"
#: a signature member is about 200 bytes; a bigger one is not read
MAX_SIGNATURE_BYTES = 4096
#: a key file is under 200 bytes (PEM) or 500 (OpenSSH private); a bigger one is not read
MAX_KEY_BYTES = 64 << 10
#: a passphrase for an encrypted private key (PEM or OpenSSH), when one is used
PASSPHRASE_ENV = "EDGEC_KEY_PASSPHRASE"
#: the trust set when --trust is not given: .pub files or folders, os.pathsep-separated
TRUST_ENV = "EDGEC_TRUST"


def _crypto():
    """cryptography's Ed25519 and serialization modules (imported when first needed)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519, serialization


def raw_public(public_key) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    _, ser = _crypto()
    return public_key.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)


def key_id(public_key) -> str:
    """16 hex digits naming a public key: the start of the sha256 of its raw bytes."""
    return hashlib.sha256(raw_public(public_key)).hexdigest()[:16]


def _read_key_file(path: Path, what: str) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {path}: no such key file; make one with 'edgec keygen NAME'")
    if path.stat().st_size > MAX_KEY_BYTES:
        raise UsageError(f"{what} {path}: {path.stat().st_size} bytes, not a key file")
    return path.read_bytes()


def load_private_key(path: str | os.PathLike):
    """The Ed25519 private key in ``path`` (PKCS#8 PEM or OpenSSH); encrypted keys take
    their passphrase from EDGEC_KEY_PASSPHRASE. Anything else is a UsageError."""
    ed25519, ser = _crypto()
    path = Path(path)
    data = _read_key_file(path, "--sign")
    passphrase = os.environ.get(PASSPHRASE_ENV)
    password = passphrase.encode() if passphrase is not None else None
    key = None
    for loader in (ser.load_pem_private_key, ser.load_ssh_private_key):
        for pw in dict.fromkeys((password, None)):  # the passphrase, then none
            try:
                key = loader(data, password=pw)
                break
            except TypeError as exc:  # encrypted and no passphrase, or one not needed
                if pw is None and "not given" in str(exc):
                    raise UsageError(f"--sign {path}: the key is encrypted; give its "
                                     f"passphrase in {PASSPHRASE_ENV}") from None
            except ValueError as exc:  # another format, or a wrong passphrase
                if "password" in str(exc).lower():
                    raise UsageError(f"--sign {path}: cannot decrypt the key; is "
                                     f"{PASSPHRASE_ENV} its passphrase?") from None
            except Exception:  # any other parse failure: not this format
                pass
        if key is not None:
            break
    if key is None:
        if b"PUBLIC KEY" in data or data.startswith(b"ssh-ed25519 "):
            raise UsageError(f"--sign {path}: that is a public key; sign with the private "
                             "one (NAME.key)")
        raise UsageError(f"--sign {path}: not a PEM or OpenSSH private key; make one with "
                         "'edgec keygen NAME'")
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(f"--sign {path}: a {type(key).__name__.removeprefix('_')} key; "
                         "edgec signs with Ed25519 keys only ('edgec keygen NAME')")
    return key


def load_public_key(path: str | os.PathLike, what: str = "--trust"):
    """The Ed25519 public key in ``path`` (PEM or an OpenSSH ``ssh-ed25519`` line)."""
    ed25519, ser = _crypto()
    path = Path(path)
    data = _read_key_file(path, what)
    key = None
    for loader in (ser.load_pem_public_key, ser.load_ssh_public_key):
        try:
            key = loader(data.strip())
            break
        except Exception:  # not this format
            continue
    if key is None:
        if b"PRIVATE KEY" in data:
            raise UsageError(f"{what} {path}: that is a private key; trust its public "
                             "half (NAME.pub) and keep the private key off the device")
        raise UsageError(f"{what} {path}: not a PEM or OpenSSH public key")
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UsageError(f"{what} {path}: not an Ed25519 key; edgec verifies Ed25519 "
                         "signatures only")
    return key


def generate_key(name: str | os.PathLike) -> tuple[Path, Path, str]:
    """Write a new key pair ``NAME.key`` (private, 0600) and ``NAME.pub``; returns
    (private path, public path, key id). Refuses to overwrite either file."""
    ed25519, ser = _crypto()
    base = Path(name)
    if base.suffix in (".key", ".pub"):
        base = base.with_suffix("")
    if not base.name or base.name in (".", ".."):
        raise UsageError(f"keygen {name}: give a name for the key files, e.g. 'release'")
    priv, pub = base.with_name(base.name + ".key"), base.with_name(base.name + ".pub")
    for p in (priv, pub):
        if p.exists() or p.is_symlink():
            raise UsageError(f"keygen: {p} exists; edgec never overwrites a key: remove it "
                             "or choose another NAME")
    if not base.parent.is_dir():
        raise UsageError(f"keygen: folder {base.parent} does not exist")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                    ser.NoEncryption())
    public_pem = key.public_key().public_bytes(ser.Encoding.PEM,
                                               ser.PublicFormat.SubjectPublicKeyInfo)
    _create(priv, private_pem, 0o600)
    try:
        _create(pub, public_pem, 0o644)
    except BaseException:
        priv.unlink(missing_ok=True)
        raise
    return priv, pub, key_id(key.public_key())


def _create(path: Path, data: bytes, mode: int) -> None:
    """Write a new file with ``mode`` from the start (O_EXCL: never an existing file,
    never a symlink followed; the mode is set before any byte is written)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise UsageError(f"keygen: {path} exists; edgec never overwrites a key") from None
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits off the public key
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Signature:
    """A parsed ``signature.ed25519`` member: which key signed, and the 64 signature bytes."""

    key_id: str
    value: bytes

    def to_bytes(self) -> bytes:
        """The member's content: JSON with the algorithm, key id and base64 signature."""
        return (json.dumps({"algorithm": ALGORITHM, "key_id": self.key_id,
                            "signed": "manifest.json",
                            "signature": base64.b64encode(self.value).decode()},
                           indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, path: Path) -> Signature:
        """The signature in ``data``; a malformed one is an ArtifactError."""
        bad = (f"{path}: member '{SIGNATURE}' is malformed; the artifact was tampered with "
               "or corrupted, do not load it")
        try:
            d = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise ArtifactError(bad) from None
        if not isinstance(d, dict) or d.get("algorithm") != ALGORITHM \
                or not isinstance(d.get("key_id"), str) or not isinstance(d.get("signature"), str):
            raise ArtifactError(bad)
        kid = d["key_id"]
        if len(kid) != 16 or any(c not in "0123456789abcdef" for c in kid):
            raise ArtifactError(bad)
        try:
            value = base64.b64decode(d["signature"], validate=True)
        except (binascii.Error, ValueError):
            raise ArtifactError(bad) from None
        if len(value) != 64:
            raise ArtifactError(bad)
        return cls(kid, value)


def sign_manifest(private_key, manifest_bytes: bytes) -> Signature:
    """The signature of ``manifest_bytes`` with ``private_key``."""
    return Signature(key_id(private_key.public_key()), private_key.sign(CONTEXT + manifest_bytes))


@dataclass
class TrustStore:
    """The public keys a device accepts artifacts from, by key id.

    Made with `load_trust`; `edgec.artifact.read_verified` checks a signature
    against it before anything of the artifact is extracted.
    """

    keys: dict[str, object] = field(default_factory=dict)  # key id -> Ed25519PublicKey
    sources: dict[str, Path] = field(default_factory=dict)  # key id -> the .pub file
    given: tuple[str, ...] = ()  # what --trust named, for messages

    def describe(self) -> str:
        """``N trusted key(s) from PATHS``, as refusals print it."""
        where = ", ".join(self.given) or "the trust set"
        return f"{len(self.keys)} trusted key(s) from {where}"

    def verify(self, manifest_bytes: bytes, signature: Signature | None, path: Path) -> None:
        """Refuse (ArtifactError) unless ``signature`` is a trusted key's over the bytes."""
        if signature is None:
            raise ArtifactError(f"{path}: artifact is not signed, and only artifacts signed by "
                                f"a trusted key are accepted ({self.describe()}); sign it with "
                                "'edgec sign' or 'edgec compile --sign KEY'")
        key = self.keys.get(signature.key_id)
        if key is None:
            raise ArtifactError(f"{path}: signed by key {signature.key_id}, which is not "
                                f"trusted ({self.describe()}); do not load it, or add that "
                                "key's .pub to the trust set if you expected it")
        from cryptography.exceptions import InvalidSignature

        try:
            key.verify(signature.value, CONTEXT + manifest_bytes)
        except InvalidSignature:
            raise ArtifactError(f"{path}: the signature of key {signature.key_id} does not "
                                "match the manifest; the artifact was changed after it was "
                                "signed, do not load it") from None

    def source(self, kid: str) -> Path | None:
        """The .pub file the key ``kid`` was read from (None: not trusted)."""
        return self.sources.get(kid)


def load_trust(items: Iterable[str | os.PathLike], what: str = "--trust") -> TrustStore:
    """The trust set from .pub files and folders (every ``*.pub`` directly inside).

    A missing path, a folder without keys, or a file that is not an Ed25519
    public key is a UsageError: a trust set must never come out silently empty.
    """
    store = TrustStore(given=tuple(str(i) for i in items))
    for item in items:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix == ".pub" and f.is_file())
            if not files:
                raise UsageError(f"{what} {p}: the folder holds no .pub key files")
        elif p.exists():
            files = [p]
        else:
            raise UsageError(f"{what} {p}: no such key file or folder")
        for f in files:
            key = load_public_key(f, what)
            kid = key_id(key)
            store.keys[kid] = key
            store.sources.setdefault(kid, f)
    if not store.keys:
        raise UsageError(f"{what}: no keys given")
    return store


def trust_from_env() -> TrustStore | None:
    """The trust set EDGEC_TRUST names (os.pathsep-separated .pub files or folders),
    or None when it is unset or empty."""
    value = os.environ.get(TRUST_ENV, "")
    items = [i for i in value.split(os.pathsep) if i]
    return load_trust(items, TRUST_ENV) if items else None
