"""Signed artifacts: keygen, signing, and refusing what a trusted key did not sign.

The threat: an artifact whose library was replaced and whose manifest was
re-hashed passes every sha256 check, and loading it runs its code (dlopen
runs a library's constructors). Under --trust such an artifact, an unsigned
one, and one signed by another key are refused before any member is
extracted, let alone loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from test_bad_input import assert_one_line_error

from edgec.artifact import (
    LIBRARY,
    MANIFEST,
    Artifact,
    read_artifact,
    read_verified,
    sign_artifact,
    trusting,
    write_artifact,
)
from edgec.errors import EXIT_BAD_ARTIFACT, EXIT_USAGE, ArtifactError, UsageError
from edgec.signing import (
    SIGNATURE,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    load_trust,
)


def _keys(tmp_path: Path, name: str = "dev"):
    priv, pub, kid = generate_key(tmp_path / name)
    return priv, pub, kid


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers()}


def _write(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return path


def _replace_library(src: Path, dst: Path, library: bytes) -> Path:
    """The attack: a new model.so, the manifest re-hashed, the old signature kept."""
    members = _members(src)
    manifest = json.loads(members[MANIFEST])
    manifest["members"][LIBRARY] = {"sha256": hashlib.sha256(library).hexdigest(),
                                    "bytes": len(library)}
    members[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    members[LIBRARY] = library
    return _write(dst, members)


def _fake(tmp_path: Path, key=None, name: str = "fake.edgec") -> Path:
    src = tmp_path / "lib.bin"
    src.write_bytes(b"\x7fELF not really")
    out = tmp_path / name
    write_artifact(out, {"inputs": [], "outputs": [], "target": {}}, {LIBRARY: src},
                   sign_key=key)
    return out


# ------------------------------------------------------------------ keys


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path):
    old = os.umask(0)  # even with a permissive umask
    try:
        priv, pub, kid = _keys(tmp_path)
    finally:
        os.umask(old)
    assert (priv.name, pub.name) == ("dev.key", "dev.pub")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert b"PRIVATE KEY" in priv.read_bytes() and b"PUBLIC KEY" in pub.read_bytes()
    assert key_id(load_private_key(priv).public_key()) == kid == key_id(load_public_key(pub))
    assert len(kid) == 16


@pytest.mark.parametrize("existing", ["dev.key", "dev.pub"])
def test_keygen_never_overwrites(tmp_path, existing):
    (tmp_path / existing).write_text("precious")
    with pytest.raises(UsageError, match="never overwrites"):
        generate_key(tmp_path / "dev")
    assert (tmp_path / existing).read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]  # nothing half-made


def test_keygen_refuses_through_a_symlink(tmp_path):
    (tmp_path / "dev.key").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="never overwrites"):
        generate_key(tmp_path / "dev")
    assert not (tmp_path / "elsewhere").exists()


def test_keygen_cli(cli, tmp_path):
    res = cli("keygen", tmp_path / "release")
    assert res.code == 0, res.err
    assert "release.key" in res.out and "0600" in res.out
    again = cli("keygen", tmp_path / "release.key")  # the same name, given with its suffix
    assert again.code == EXIT_USAGE and "exists" in again.err


def test_key_files_of_the_wrong_kind_are_usage_errors(tmp_path):
    priv, pub, _ = _keys(tmp_path)
    with pytest.raises(UsageError, match="public key"):
        load_private_key(pub)
    with pytest.raises(UsageError, match="private key"):
        load_trust([priv])
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key")
    with pytest.raises(UsageError, match="not a PEM or OpenSSH public key"):
        load_trust([junk])
    with pytest.raises(UsageError, match="no such key file"):
        load_trust([tmp_path / "missing.pub"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match=r"no \.pub key files"):
        load_trust([empty])


def test_encrypted_private_key_takes_its_passphrase_from_the_environment(tmp_path,
                                                                        monkeypatch):
    from cryptography.hazmat.primitives import serialization as ser

    key = load_private_key(_keys(tmp_path)[0])
    enc = tmp_path / "enc.key"
    enc.write_bytes(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                      ser.BestAvailableEncryption(b"s3cret")))
    monkeypatch.delenv("EDGEC_KEY_PASSPHRASE", raising=False)
    with pytest.raises(UsageError, match="encrypted"):
        load_private_key(enc)
    monkeypatch.setenv("EDGEC_KEY_PASSPHRASE", "wrong")
    with pytest.raises(UsageError, match="cannot decrypt"):
        load_private_key(enc)
    monkeypatch.setenv("EDGEC_KEY_PASSPHRASE", "s3cret")
    assert key_id(load_private_key(enc).public_key()) == key_id(key.public_key())


def test_openssh_keys_are_read(tmp_path):
    from cryptography.hazmat.primitives import serialization as ser

    key = load_private_key(_keys(tmp_path)[0])
    (tmp_path / "id.key").write_bytes(key.private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption()))
    (tmp_path / "id.pub").write_bytes(key.public_key().public_bytes(
        ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH) + b" me@host\n")
    art = _fake(tmp_path, load_private_key(tmp_path / "id.key"))
    assert read_artifact(art, trust=load_trust([tmp_path / "id.pub"])).trusted


# ------------------------------------------------------------------ the format


def test_signed_artifact_roundtrip_and_what_is_refused(tmp_path):
    priv, pub, kid = _keys(tmp_path)
    _, other_pub, _ = _keys(tmp_path, "other")
    trust = load_trust([pub])
    art = _fake(tmp_path, load_private_key(priv))
    read = read_artifact(art, trust=trust)
    assert read.signature.key_id == kid and read.trusted
    assert SIGNATURE not in read.manifest["members"]  # it signs the manifest, not listed in it
    # unsigned
    unsigned = _fake(tmp_path, None, "unsigned.edgec")
    assert read_artifact(unsigned).signature is None  # accepted without a trust set
    with pytest.raises(ArtifactError, match="not signed"):
        read_verified(unsigned, trust=trust)
    # another key
    with pytest.raises(ArtifactError, match=f"signed by key {kid}, which is not trusted"):
        read_verified(art, trust=load_trust([other_pub]))
    # a trust folder holding both keys accepts it
    assert read_artifact(art, trust=load_trust([tmp_path])).trusted


def test_a_changed_manifest_breaks_the_signature(tmp_path):
    priv, pub, _ = _keys(tmp_path)
    art = _fake(tmp_path, load_private_key(priv))
    members = _members(art)
    members[MANIFEST] = members[MANIFEST].replace(b'"outputs": []', b'"outputs":  []')
    bad = _write(tmp_path / "bad.edgec", members)
    read_verified(bad)  # the hashes still match: only the signature notices
    with pytest.raises(ArtifactError, match="does not match the manifest"):
        read_verified(bad, trust=load_trust([pub]))


@pytest.mark.parametrize("sig", [b"", b"{}", b"[1]", b"\xff\xfe", b'{"algorithm": "rsa"}',
                                 b'{"algorithm": "ed25519", "key_id": "0011223344556677", '
                                 b'"signature": "not base64!"}',
                                 b'{"algorithm": "ed25519", "key_id": "0011223344556677", '
                                 b'"signature": "AAAA"}'])
def test_a_malformed_signature_member_is_refused(tmp_path, sig):
    members = _members(_fake(tmp_path))
    members[SIGNATURE] = sig
    bad = _write(tmp_path / "bad.edgec", members)
    with pytest.raises(ArtifactError, match="malformed"):
        read_verified(bad)


def test_an_oversized_signature_member_is_not_read(tmp_path):
    members = _members(_fake(tmp_path))
    members[SIGNATURE] = b" " * 10_000
    with pytest.raises(ArtifactError, match="over the 4096 bytes"):
        read_verified(_write(tmp_path / "big.edgec", members))


def test_sign_artifact_keeps_manifest_bytes_and_replaces_a_signature(tmp_path):
    priv, pub, kid = _keys(tmp_path)
    other_priv, other_pub, other_kid = _keys(tmp_path, "other")
    art = _fake(tmp_path)
    before = _members(art)
    sign_artifact(art, load_private_key(priv))
    after = _members(art)
    assert after[MANIFEST] == before[MANIFEST] and after[LIBRARY] == before[LIBRARY]
    assert read_artifact(art, trust=load_trust([pub])).signature.key_id == kid
    out = tmp_path / "resigned.edgec"
    sign_artifact(art, load_private_key(other_priv), out)
    assert read_artifact(out, trust=load_trust([other_pub])).signature.key_id == other_kid
    assert [n for n in _members(out)].count(SIGNATURE) == 1


def test_sign_refuses_a_tampered_artifact(tmp_path):
    priv, _, _ = _keys(tmp_path)
    members = _members(_fake(tmp_path))
    members[LIBRARY] = b"\x7fELF not REALLY"  # the same size, another hash
    bad = _write(tmp_path / "bad.edgec", members)
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        sign_artifact(bad, load_private_key(priv))


def test_trusting_applies_to_reads_that_pass_no_trust(tmp_path):
    """The emulated run and the bundle writer read the artifact again by path: inside
    `trusting` that read is checked too (no window to swap the file in between)."""
    _, pub, _ = _keys(tmp_path)
    unsigned = _fake(tmp_path)
    with trusting(load_trust([pub])), pytest.raises(ArtifactError, match="not signed"):
        read_verified(unsigned)
    read_verified(unsigned)  # outside: no requirement


# ------------------------------------------------------------------ real artifacts


def _signed_copy(conv_artifact, tmp_path) -> tuple[Path, Path, Path]:
    _, path = conv_artifact
    priv, pub, _ = _keys(tmp_path)
    art = tmp_path / "signed.edgec"
    sign_artifact(path, load_private_key(priv), art)
    return art, priv, pub


def test_signed_artifact_runs_under_trust(conv_artifact, tmp_path):
    art, _, pub = _signed_copy(conv_artifact, tmp_path)
    a = Artifact(art, trust=load_trust([pub]))
    y = a.run({"x": np.ones((1, 3, 16, 16), np.float32)})["y"]
    assert y.shape == (1, 8, 16, 16)


def _constructor_library(tmp_path: Path, marker: Path) -> bytes:
    """A shared library whose constructor creates ``marker``: proof that it was loaded."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("needs a C compiler")
    src = tmp_path / "evil.c"
    src.write_text('#include <stdio.h>\n__attribute__((constructor)) static void run(void) '
                   f'{{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n')
    so = tmp_path / "evil.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    return so.read_bytes()


def test_replaced_library_with_rehashed_manifest_is_refused_before_loading(conv_artifact,
                                                                          tmp_path):
    art, _, pub = _signed_copy(conv_artifact, tmp_path)
    marker = tmp_path / "code-ran"
    evil = _replace_library(art, tmp_path / "evil.edgec", _constructor_library(tmp_path, marker))
    with pytest.raises(ArtifactError, match="does not match the manifest"):
        Artifact(evil, trust=load_trust([pub]))
    from edgec.runtime.session import Session

    with pytest.raises(ArtifactError, match="does not match the manifest"):
        Session(evil, trust=load_trust([pub]))
    assert not marker.exists()
    # Without --trust the hashes pass and the code runs: what signing is for.
    with pytest.raises(ArtifactError, match="does not load as a TVM executable"):
        Artifact(evil).run({"x": np.ones((1, 3, 16, 16), np.float32)})
    assert marker.exists()


def test_cli_sign_trust_and_inspect(cli, conv_artifact, tmp_path, monkeypatch):
    _, path = conv_artifact
    keys = tmp_path / "keys"
    keys.mkdir()
    assert cli("keygen", keys / "dev").code == 0
    assert cli("keygen", tmp_path / "other").code == 0
    art = tmp_path / "a.edgec"
    res = cli("sign", path, "--key", keys / "dev.key", "-o", art)
    assert res.code == 0, res.err
    kid = res.out.split("signed with key ")[1].split()[0]
    res = cli("run", art, "--random", "--repeat", "0", "--trust", keys, "-o", tmp_path / "y.npz")
    assert res.code == 0, res.err
    res = cli("inspect", art, "--trust", keys / "dev.pub")
    assert f"signed by key {kid}, verified against" in res.out
    assert f"signed by key {kid} (not checked" in cli("inspect", art).out
    assert "signature: unsigned" in cli("inspect", path).out
    assert json.loads(cli("inspect", art, "--json").out)["signature"]["key_id"] == kid
    # refused: another key, unsigned; each with one line and exit 7, nothing written
    for artifact, trust, needle in ((art, tmp_path / "other.pub", "not trusted"),
                                    (path, keys, "not signed")):
        for cmd in (("run", artifact, "--random", "-o", tmp_path / "n.npz"),
                    ("profile", artifact), ("inspect", artifact),
                    ("verify", artifact, "--model", conv_artifact[0]),
                    ("bundle", artifact, "-o", tmp_path / "app")):
            assert_one_line_error(cli(*cmd, "--trust", trust), EXIT_BAD_ARTIFACT, needle)
    assert not (tmp_path / "n.npz").exists() and not (tmp_path / "app").exists()
    # EDGEC_TRUST: the default trust set
    monkeypatch.setenv("EDGEC_TRUST", f"{tmp_path / 'other.pub'}{os.pathsep}{keys}")
    assert cli("run", art, "--random", "--repeat", "0", "-o", tmp_path / "y.npz").code == 0
    assert_one_line_error(cli("run", path, "--random", "-o", tmp_path / "y.npz"),
                          EXIT_BAD_ARTIFACT, "not signed")
    # ... not applied to what verify compiles itself; --trust there is a usage error
    monkeypatch.delenv("EDGEC_TRUST")
    assert_one_line_error(cli("verify", conv_artifact[0], "--trust", keys), EXIT_USAGE,
                          "--trust checks an artifact's signature")
    assert_one_line_error(cli("inspect", conv_artifact[0], "--trust", keys), EXIT_USAGE,
                          "not a model's")


@pytest.mark.compile
def test_compile_sign(cli, conv_onnx, tmp_path):
    priv, pub, kid = _keys(tmp_path)
    art = tmp_path / "c.edgec"
    res = cli("compile", conv_onnx, "--sign", priv, "-o", art, "--no-tuning-db")
    assert res.code == 0, res.err
    assert f"signed with key {kid}" in res.out
    assert Artifact(art, trust=load_trust([pub])).signed_by == kid
    # a bad key fails before the compile, and writes nothing
    res = cli("compile", conv_onnx, "--sign", pub, "-o", tmp_path / "d.edgec")
    assert res.code == EXIT_USAGE and "public key" in res.err
    assert not (tmp_path / "d.edgec").exists()
