"""Tiny wheels written directly (a wheel is a zip with a dist-info), for offline installs."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path


def write_wheel(
    dest: Path,
    name: str,
    version: str,
    files: Mapping[str, str],
    *,
    requires: Iterable[str] = (),
) -> Path:
    """``dest/<name>-<version>-py3-none-any.whl`` holding ``files`` (path → text)."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    members = dict(files)
    members[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: MIT\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires)
    )
    members[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: plugbay-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for path, text in members.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    members[f"{info}/RECORD"] = "\n".join(record) + "\n"
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in members.items():
            archive.writestr(path, text)
    return wheel


def libdemo(dest: Path, version: str) -> Path:
    """``libdemo`` at ``version``: ``libdemo.VERSION`` says which one was imported."""
    return write_wheel(
        dest,
        "libdemo",
        version,
        {
            "libdemo/__init__.py": f'VERSION = "{version}"\n\ndef where() -> str:\n    return __file__\n'
        },
    )
