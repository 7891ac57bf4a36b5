"""Ed25519 signatures for plugin wheels, and the host's trusted keys.

* ``plugbay keygen NAME`` writes ``NAME.key`` (PKCS#8 PEM, mode 0600: keep it
  secret) and ``NAME.pub`` (one line: ``plugbay-ed25519 <base64> <name>``).
* ``plugbay sign WHEEL --key NAME.key`` writes ``WHEEL.sig``: JSON naming the
  wheel, its SHA-256 digest and the key id, with the signature over
  ``plugbay-wheel-signature/1\\n<file name>\\n<digest>``.
* A host trusts the public keys in ``<state>/trusted-keys/`` (``plugbay trust``).
  When its policy requires signed plugins (``[policy] require-signed = true``
  in ``plugbay.toml``), :func:`verify_wheel` refuses an unsigned wheel or one
  signed by a key it does not trust. A digest or signature that does not match
  is refused whatever the policy.

A key id is the first 16 hex digits of the SHA-256 of the raw public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from plugbay.model.host_config import read_host_config
from plugbay.model.host_config import require_signed as host_require_signed
from plugbay.pdk.errors import SignatureError
from plugbay.pdk.wheels import WheelInfo, file_sha256, inspect_wheel

__all__ = [
    "TrustPolicy",
    "TrustStore",
    "Verification",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "sign_wheel",
    "verify_wheel",
]

FORMAT: Final = "plugbay-signature/1"
_PREFIX: Final = b"plugbay-wheel-signature/1\n"
_PUB_TAG: Final = "plugbay-ed25519"
TRUST_DIR: Final = "trusted-keys"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _public_line(public: Ed25519PublicKey, name: str) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{_PUB_TAG} {base64.b64encode(raw).decode()} {name}\n"


def generate_key(name: str, directory: Path = Path(".")) -> tuple[Path, Path]:
    """A new Ed25519 key pair: ``NAME.key`` (secret, 0600) and ``NAME.pub``."""
    if not name or "/" in name or name.startswith("."):
        raise SignatureError(
            f"'{name}' is not a key name", hint="use a plain name such as 'alice' or 'acme-release'"
        )
    directory = Path(directory)
    key_path, pub_path = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (key_path, pub_path):
        if path.exists():
            raise SignatureError(
                "a key file of that name exists already",
                where=str(path),
                hint="choose another name, or move the old key away (it may still sign releases)",
            )
    directory.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_text(_public_line(private.public_key(), name))
    return key_path, pub_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read the key: {exc.strerror}", where=str(path)) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(
            "not an Ed25519 private key",
            where=str(path),
            hint="sign with the .key file 'plugbay keygen' wrote (not the .pub)",
        )
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SignatureError(
            f"cannot read the public key: {exc.strerror}",
            where=str(path),
            hint="name the .pub file 'plugbay keygen' wrote (its path, or the publisher's)",
        ) from None
    except UnicodeDecodeError:
        raise SignatureError(
            "not a plugbay public key: it is not text",
            where=str(path),
            hint="use the .pub file 'plugbay keygen' wrote: 'plugbay-ed25519 <base64> <name>'",
        ) from None
    parts = text.split()
    try:
        if len(parts) < 2 or parts[0] != _PUB_TAG:
            raise ValueError("no plugbay-ed25519 tag")
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(parts[1], validate=True))
    except (ValueError, binascii.Error):
        raise SignatureError(
            "not a plugbay public key",
            where=str(path),
            hint="use the .pub file 'plugbay keygen' wrote: 'plugbay-ed25519 <base64> <name>'",
        ) from None


def _message(wheel_name: str, digest: str) -> bytes:
    return _PREFIX + wheel_name.encode() + b"\n" + digest.encode()


def sign_wheel(wheel: Path, key_path: Path) -> Path:
    """Sign a plugin wheel; writes and returns ``<wheel>.sig`` (and ``.sha256`` if missing)."""
    info = inspect_wheel(wheel)
    private = load_private_key(key_path)
    digest = file_sha256(info.path)
    sha_file = info.path.with_name(info.path.name + ".sha256")
    if sha_file.exists():
        recorded = sha_file.read_text().split()[0] if sha_file.read_text().split() else ""
        if recorded != digest:
            raise SignatureError(
                "the wheel does not match its .sha256 digest: it changed after it was built",
                where=str(info.path),
                hint="rebuild it with 'plugbay build' and sign the new wheel",
            )
    else:
        sha_file.write_text(f"{digest}  {info.path.name}\n")
    public = private.public_key()
    signature = private.sign(_message(info.path.name, digest))
    sig_path = info.path.with_name(info.path.name + ".sig")
    payload = {
        "format": FORMAT,
        "wheel": info.path.name,
        "plugin": info.manifest.id,
        "version": str(info.manifest.version),
        "sha256": digest,
        "key-id": key_id(public),
        "signature": base64.b64encode(signature).decode(),
    }
    sig_path.write_text(json.dumps(payload, indent=2) + "\n")
    return sig_path


# --------------------------------------------------------------------------- trust


class TrustStore:
    """The public keys a host trusts: ``<state>/trusted-keys/<key id>.pub``."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir) / TRUST_DIR

    def add(self, pub_path: Path) -> str:
        public = load_public_key(pub_path)
        kid = key_id(public)
        name = Path(pub_path).read_text().split()[2:3] or [Path(pub_path).stem]
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / f"{kid}.pub").write_text(_public_line(public, name[0]))
        return kid

    def remove(self, kid: str) -> bool:
        path = self.directory / f"{kid}.pub"
        if not path.exists():
            return False
        path.unlink()
        return True

    def keys(self) -> dict[str, Ed25519PublicKey]:
        out: dict[str, Ed25519PublicKey] = {}
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.pub")):
                public = load_public_key(path)
                out[key_id(public)] = public
        return out

    def names(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.pub")):
                parts = path.read_text().split()
                out[path.stem] = parts[2] if len(parts) > 2 else ""
        return out


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """What a host accepts: its trusted keys, and whether every plugin must be signed."""

    keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    require_signed: bool = False

    @classmethod
    def for_host(
        cls, state_dir: Path, config_file: Path | None = None, *, require_signed: bool | None = None
    ) -> TrustPolicy:
        """The policy of the host on ``state_dir``: keys from its trust store, and
        ``[policy] require-signed`` from its host config file ``config_file`` (None: no
        file), overridden when given. The file is read as the host reads it
        (``model.host_config``): one it cannot read is a SignatureError in its words."""
        required = False
        if config_file is not None:
            data = read_host_config(Path(config_file), error=SignatureError)
            required = host_require_signed(data, str(config_file), error=SignatureError)
        if require_signed is not None:
            required = require_signed
        return cls(TrustStore(state_dir).keys(), required)


def _read_signature(sig_file: Path) -> tuple[str, bytes, str, str]:
    """(key id, signature, signed digest, signed file name) from a ``.sig`` file."""
    try:
        payload = json.loads(sig_file.read_text())
        if payload.get("format") != FORMAT:
            raise ValueError(f"format is {payload.get('format')!r}, not {FORMAT!r}")
        return (
            str(payload["key-id"]),
            base64.b64decode(payload["signature"], validate=True),
            str(payload["sha256"]),
            str(payload["wheel"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, OSError) as exc:
        raise SignatureError(
            f"the signature file is malformed: {exc}",
            where=str(sig_file),
            hint="sign the wheel again with 'plugbay sign'",
        ) from None


@dataclass(frozen=True, slots=True)
class Verification:
    """A wheel that passed :func:`verify_wheel`: what it is, and who signed it (if anyone)."""

    wheel: WheelInfo
    digest: str
    signed_by: str | None
    notes: tuple[str, ...] = ()


def verify_wheel(wheel: Path, policy: TrustPolicy) -> Verification:
    """Check a plugin wheel against a host's policy; raises with the reason when refused.

    Refused: a file that is not a plugin wheel or whose files do not match its
    RECORD (:class:`WheelError`); a digest that does not match ``.sha256`` or the
    signature; a signature that does not verify; and, when the policy requires
    signed plugins, an unsigned wheel or one signed by a key the host does not
    trust (:class:`SignatureError`).
    """
    path = Path(wheel)
    if not path.is_file():
        inspect_wheel(path)  # names what is wrong: no such file
    digest = file_sha256(path)
    notes: list[str] = []
    # the digests first: a changed file is reported as changed, whatever else it breaks
    sha_file = path.with_name(path.name + ".sha256")
    if sha_file.exists():
        words = sha_file.read_text().split()
        if not words or words[0] != digest:
            raise SignatureError(
                "the wheel does not match its .sha256 digest: it was changed after it was built",
                where=str(path),
                hint="do not install it; get the wheel again from its author, or rebuild it",
            )
    sig_file = path.with_name(path.name + ".sig")
    signed = _read_signature(sig_file) if sig_file.exists() else None
    if signed is not None and signed[2] != digest:
        raise SignatureError(
            "the wheel does not match its signature: its digest differs from the signed one, "
            "so it was changed after it was signed",
            where=str(path),
            hint="do not install it; get the wheel and its .sig again from its author",
        )
    info = inspect_wheel(path)
    if signed is None:
        if policy.require_signed:
            raise SignatureError(
                "the wheel is not signed, and this host requires signed plugins",
                plugin=info.manifest.id,
                where=str(path),
                hint=f"ask its author for {sig_file.name} ('plugbay sign'), or set "
                "[policy] require-signed = false in plugbay.toml to accept unsigned plugins",
            )
        notes.append("not signed (this host accepts unsigned plugins)")
        return Verification(info, digest, None, tuple(notes))
    kid, signature, _, signed_name = signed
    public = policy.keys.get(kid)
    if public is None:
        if policy.require_signed:
            raise SignatureError(
                f"the wheel is signed by key {kid}, which this host does not trust",
                plugin=info.manifest.id,
                where=str(sig_file),
                hint="if you trust its author, add their public key: 'plugbay trust AUTHOR.pub'",
            )
        notes.append(f"signed by key {kid}, which this host does not trust; not verified")
        return Verification(info, digest, None, tuple(notes))
    try:
        public.verify(signature, _message(signed_name, digest))
    except InvalidSignature:
        raise SignatureError(
            f"the signature does not verify with trusted key {kid}: the wheel or its signature "
            "was tampered with",
            plugin=info.manifest.id,
            where=str(sig_file),
            hint="do not install it; get the wheel and its .sig again from its author",
        ) from None
    if signed_name != path.name:
        notes.append(f"signed as {signed_name}")
    return Verification(info, digest, kid, tuple(notes))
