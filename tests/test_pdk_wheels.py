"""``plugbay build``, keygen/sign/verify/trust and installing wheels: every refusal has its reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from plugbay.pdk import (
    BuildError,
    SignatureError,
    TrustPolicy,
    TrustStore,
    WheelError,
    build_plugin,
    create_plugin,
    generate_key,
    inspect_wheel,
    sign_wheel,
    verify_wheel,
    wheel_to_directory,
)
from plugbay.pdk.signing import key_id, load_public_key
from plugbay.pdk.wheels import file_sha256
from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests.conftest import BUNDLED

WHEEL = "acme_greeter-0.1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the utility template, its .sha256, and a key pair 'alice' beside it."""
    root = tmp_path_factory.mktemp("built")
    package = create_plugin("utility", "acme.greeter", root / "acme-greeter")
    result = build_plugin(package, root / "dist")
    assert result.wheel.name == WHEEL
    generate_key("alice", root / "keys")
    generate_key("mallory", root / "keys")
    return root


@pytest.fixture
def work(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built wheel and the keys."""
    shutil.copytree(built / "dist", tmp_path / "dist")
    shutil.copytree(built / "keys", tmp_path / "keys")
    return tmp_path


def policy_for(*pubs: Path, required: bool = True) -> TrustPolicy:
    keys = {key_id(k): k for k in (load_public_key(p) for p in pubs)}
    return TrustPolicy(keys, required)


def test_build_makes_a_standard_wheel_carrying_the_manifest(built: Path) -> None:
    wheel = built / "dist" / WHEEL
    sha = (built / "dist" / (WHEEL + ".sha256")).read_text().split()
    assert sha[1] == WHEEL and len(sha[0]) == 64
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert {
            "acme_greeter/plugin.py", "acme_greeter/plugin.toml", "acme_greeter/py.typed",
            "acme_greeter-0.1.0.dist-info/WHEEL", "acme_greeter-0.1.0.dist-info/RECORD",
        } <= names  # fmt: skip
        assert "Wheel-Version: 1.0" in z.read("acme_greeter-0.1.0.dist-info/WHEEL").decode()
        entry_points = z.read("acme_greeter-0.1.0.dist-info/entry_points.txt").decode()
        assert "[plugbay.plugins]" in entry_points
        record = z.read("acme_greeter-0.1.0.dist-info/RECORD").decode()
        assert "acme_greeter/plugin.toml,sha256=" in record
    info = inspect_wheel(wheel)
    assert (info.manifest.id, str(info.manifest.version)) == ("acme.greeter", "0.1.0")
    assert info.manifest.config is not None and "greeting" in info.manifest.config.fields
    # the source tree is left as it was: no build/ or *.egg-info
    assert sorted(p.name for p in (built / "acme-greeter").iterdir()) == [
        ".gitignore", "README.md", "acme_greeter", "pyproject.toml", "tests",
    ]  # fmt: skip


def test_an_installed_wheel_is_found_through_its_entry_point(built: Path, tmp_path: Path) -> None:
    """pip installs it like any wheel; a host finds it by entry point, manifest included."""
    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(target), str(built / "dist" / WHEEL)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr
    script = textwrap.dedent(
        """
        import asyncio, sys
        from plugbay.runtime.host import Host

        async def main():
            async with Host(None, state_dir=sys.argv[1]) as host:
                print(host.plugin("acme.greeter").manifest.origin)
                print(await host.call("acme.greeter", "greet", name="Ada"))

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "state")],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["entry-point", "Hello,", "Ada!"]


def test_build_of_a_directory_plugin(tmp_path: Path) -> None:
    result = build_plugin(BUNDLED / "utility" / "formatters", tmp_path / "out")
    info = inspect_wheel(result.wheel)
    assert info.manifest.id == "utility.formatters"
    assert info.manifest.entry == "plugbay_utility_formatters.formatters_plugin:FormattersPlugin"
    assert not (BUNDLED / "utility" / "formatters" / "dist").exists()


def test_build_refuses_a_manifest_that_does_not_validate(tmp_path: Path) -> None:
    package = create_plugin("utility", "acme.broken", tmp_path / "p")
    text = (package / "pyproject.toml").read_text().replace('type = "utility"', 'type = "utilty"')
    (package / "pyproject.toml").write_text(text)
    result = plugbay("build", str(package), cwd=tmp_path)
    assert result.returncode == 1
    assert "the manifest does not validate: 'utilty' is not a valid type" in result.stderr
    assert "nothing was built" in result.stderr
    assert not (package / "dist").exists()


def test_build_refuses_code_that_does_not_validate(tmp_path: Path) -> None:
    package = create_plugin("utility", "acme.untyped", tmp_path / "p")
    code = package / "acme_untyped" / "plugin.py"
    code.write_text(code.read_text().replace("def greet(self, name: str,", "def greet(self, name,"))
    with pytest.raises(BuildError, match="parameter 'name' has no type annotation"):
        build_plugin(package)
    assert not (package / "dist").exists()


def test_build_refuses_versions_that_disagree(tmp_path: Path) -> None:
    package = create_plugin("utility", "acme.ver", tmp_path / "p")
    text = (
        (package / "pyproject.toml")
        .read_text()
        .replace('version = "0.1.0"', 'version = "0.2.0"', 1)
    )
    (package / "pyproject.toml").write_text(text)
    with pytest.raises(
        BuildError, match=r"\[project\] version is '0.2.0' but the manifest says '0.1.0'"
    ):
        build_plugin(package)


def test_sign_and_verify(work: Path) -> None:
    wheel = work / "dist" / WHEEL
    sig = sign_wheel(wheel, work / "keys" / "alice.key")
    data = json.loads(sig.read_text())
    assert data["plugin"] == "acme.greeter" and data["key-id"] == key_id(
        load_public_key(work / "keys" / "alice.pub")
    )
    checked = verify_wheel(wheel, policy_for(work / "keys" / "alice.pub"))
    assert checked.signed_by == data["key-id"] and checked.wheel.manifest.id == "acme.greeter"


def test_tampered_wheel_is_refused(work: Path) -> None:
    wheel = work / "dist" / WHEEL
    sign_wheel(wheel, work / "keys" / "alice.key")
    # rewrite the code inside the wheel, RECORD included, as an attacker would
    with zipfile.ZipFile(wheel) as z:
        items = {n: z.read(n) for n in z.namelist()}
    items["acme_greeter/plugin.py"] += b"\nimport os  # extra\n"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in items.items():
            z.writestr(name, data)
    with pytest.raises(SignatureError, match=r"does not match its \.sha256 digest"):
        verify_wheel(wheel, policy_for(work / "keys" / "alice.pub"))
    # the attacker fixes the .sha256 too: the signature still holds the old digest
    (work / "dist" / (WHEEL + ".sha256")).write_text(f"{file_sha256(wheel)}  {WHEEL}\n")
    with pytest.raises(SignatureError, match="does not match its signature"):
        verify_wheel(wheel, policy_for(work / "keys" / "alice.pub"))
    # and drops the signature, where unsigned plugins are accepted: the RECORD still tells
    (work / "dist" / (WHEEL + ".sig")).unlink()
    with pytest.raises(WheelError, match=r"acme_greeter/plugin.py does not match its RECORD"):
        verify_wheel(wheel, TrustPolicy({}, require_signed=False))


def test_digest_mismatch_is_refused_even_when_signatures_are_not_required(work: Path) -> None:
    wheel = work / "dist" / WHEEL
    (work / "dist" / (WHEEL + ".sha256")).write_text("0" * 64 + f"  {WHEEL}\n")
    with pytest.raises(SignatureError, match=r"does not match its .sha256 digest"):
        verify_wheel(wheel, TrustPolicy({}, require_signed=False))


def test_signature_of_other_content_is_refused(work: Path, tmp_path: Path) -> None:
    wheel = work / "dist" / WHEEL
    sign_wheel(wheel, work / "keys" / "alice.key")
    sig = json.loads((work / "dist" / (WHEEL + ".sig")).read_text())
    sig["sha256"] = "1" * 64
    (work / "dist" / (WHEEL + ".sig")).write_text(json.dumps(sig))
    with pytest.raises(SignatureError, match="does not match its signature"):
        verify_wheel(wheel, policy_for(work / "keys" / "alice.pub"))


def test_forged_signature_is_refused(work: Path) -> None:
    wheel = work / "dist" / WHEEL
    sign_wheel(wheel, work / "keys" / "mallory.key")
    sig = json.loads((work / "dist" / (WHEEL + ".sig")).read_text())
    # mallory claims to be alice: alice's key id on mallory's signature
    sig["key-id"] = key_id(load_public_key(work / "keys" / "alice.pub"))
    (work / "dist" / (WHEEL + ".sig")).write_text(json.dumps(sig))
    with pytest.raises(SignatureError, match="the signature does not verify with trusted key"):
        verify_wheel(wheel, policy_for(work / "keys" / "alice.pub"))


def test_unknown_key_is_refused_when_signatures_are_required(work: Path) -> None:
    wheel = work / "dist" / WHEEL
    sign_wheel(wheel, work / "keys" / "mallory.key")
    with pytest.raises(SignatureError, match="which this host does not trust") as caught:
        verify_wheel(wheel, policy_for(work / "keys" / "alice.pub"))
    assert "plugbay trust" in (caught.value.hint or "")
    relaxed = verify_wheel(wheel, policy_for(work / "keys" / "alice.pub", required=False))
    assert relaxed.signed_by is None and "does not trust" in relaxed.notes[0]


def test_unsigned_is_refused_when_signatures_are_required(work: Path) -> None:
    wheel = work / "dist" / WHEEL
    with pytest.raises(SignatureError, match="not signed, and this host requires signed plugins"):
        verify_wheel(wheel, policy_for(work / "keys" / "alice.pub"))
    assert verify_wheel(wheel, TrustPolicy({}, require_signed=False)).signed_by is None


def test_malformed_signature_file(work: Path) -> None:
    wheel = work / "dist" / WHEEL
    (work / "dist" / (WHEEL + ".sig")).write_text("{not json")
    with pytest.raises(SignatureError, match="the signature file is malformed"):
        verify_wheel(wheel, policy_for(work / "keys" / "alice.pub"))


def make_wheel(path: Path, files: dict[str, str]) -> Path:
    """A wheel with a correct RECORD (of whatever files are given)."""
    from plugbay.pdk.wheels import record_hash

    info = next(n.split("/")[0] for n in files if ".dist-info/" in n)
    record = [f"{n},{record_hash(d.encode())},{len(d)}" for n, d in files.items()]
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return path


def test_a_wheel_that_is_not_a_plugin_is_refused(tmp_path: Path) -> None:
    plain = make_wheel(
        tmp_path / "plain-1.0-py3-none-any.whl",
        {"plain/__init__.py": "", "plain-1.0.dist-info/METADATA": "Name: plain\nVersion: 1.0\n"},
    )
    with pytest.raises(WheelError, match="not a plugin: the wheel declares no entry points"):
        inspect_wheel(plain)
    other_group = make_wheel(
        tmp_path / "tool-1.0-py3-none-any.whl",
        {
            "tool/__init__.py": "",
            "tool-1.0.dist-info/METADATA": "Name: tool\nVersion: 1.0\n",
            "tool-1.0.dist-info/entry_points.txt": "[console_scripts]\ntool = tool:main\n",
        },
    )
    with pytest.raises(WheelError, match=r"no 'plugbay.plugins' entry point"):
        inspect_wheel(other_group)
    no_manifest = make_wheel(
        tmp_path / "half-1.0-py3-none-any.whl",
        {
            "half/__init__.py": "",
            "half-1.0.dist-info/METADATA": "Name: half\nVersion: 1.0\n",
            "half-1.0.dist-info/entry_points.txt": "[plugbay.plugins]\nacme.half = half:P\n",
        },
    )
    with pytest.raises(WheelError, match=r"carries no manifest \(half/plugin.toml\)"):
        inspect_wheel(no_manifest)
    (tmp_path / "junk-1.0-py3-none-any.whl").write_text("not a zip")
    with pytest.raises(WheelError, match="not a wheel: the file is not a zip archive"):
        inspect_wheel(tmp_path / "junk-1.0-py3-none-any.whl")
    (tmp_path / "x.whl").write_text("")
    with pytest.raises(WheelError, match="not a wheel"):
        inspect_wheel(tmp_path / "x.whl")


def test_wheel_to_directory_gives_a_plugin_a_host_loads(work: Path) -> None:
    plugins = work / "plugins"
    target = wheel_to_directory(work / "dist" / WHEEL, plugins)
    assert target == plugins / "acme.greeter-0.1.0"
    assert (target / "plugin.toml").is_file() and (target / "acme_greeter" / "plugin.py").is_file()
    assert not any(p.name.endswith(".dist-info") for p in target.iterdir())
    with pytest.raises(WheelError, match=r"acme.greeter 0.1.0 is already installed"):
        wheel_to_directory(work / "dist" / WHEEL, plugins)
    assert sorted(p.name for p in plugins.iterdir()) == ["acme.greeter-0.1.0"]  # no scratch left


async def test_unpacked_wheel_serves(work: Path) -> None:
    wheel_to_directory(work / "dist" / WHEEL, work / "plugins")
    async with Host(work / "plugins", state_dir=work / "state", entry_points=False) as host:
        assert await host.call("acme.greeter", "greet", name="Ada") == "Hello, Ada!"


def test_keygen_refuses_to_overwrite_and_bad_keys_are_named(work: Path) -> None:
    with pytest.raises(SignatureError, match="a key file of that name exists already"):
        generate_key("alice", work / "keys")
    with pytest.raises(SignatureError, match="not an Ed25519 private key"):
        sign_wheel(work / "dist" / WHEEL, work / "keys" / "alice.pub")
    with pytest.raises(SignatureError, match="not a plugbay public key"):
        TrustStore(work / "state").add(work / "keys" / "alice.key")
    assert oct((work / "keys" / "alice.key").stat().st_mode & 0o777) == "0o600"
    # a key that is not there, or not text: said in words, not as Python's exception
    with pytest.raises(SignatureError) as missing:
        TrustStore(work / "state").add(work / "keys" / "bob.pub")
    assert missing.value.message == "cannot read the public key: No such file or directory"
    assert "plugbay keygen" in (missing.value.hint or "")
    (work / "keys" / "binary.pub").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SignatureError, match="not a plugbay public key: it is not text"):
        TrustStore(work / "state").add(work / "keys" / "binary.pub")


def test_install_follows_the_host_policy(work: Path) -> None:
    """The command line end to end: require-signed in plugbay.toml, trust, install."""
    (work / "plugbay.toml").write_text("[policy]\nrequire-signed = true\n")
    wheel = f"dist/{WHEEL}"
    unsigned = plugbay("install", wheel, cwd=work)
    assert unsigned.returncode == 1
    assert "the wheel is not signed, and this host requires signed plugins" in unsigned.stderr
    assert not (work / ".plugbay" / "store").exists()

    assert plugbay("sign", wheel, "--key", "keys/alice.key", cwd=work).returncode == 0
    untrusted = plugbay("install", wheel, cwd=work)
    assert untrusted.returncode == 1 and "which this host does not trust" in untrusted.stderr
    verify = plugbay("verify", wheel, cwd=work)
    assert verify.returncode == 1 and "does not trust" in verify.stderr

    assert plugbay("trust", "keys/alice.pub", cwd=work).returncode == 0
    verify = plugbay("verify", wheel, "--json", cwd=work)
    assert verify.returncode == 0 and json.loads(verify.stdout)["plugin"] == "acme.greeter"
    installed = plugbay("install", wheel, cwd=work)
    assert installed.returncode == 0, installed.stderr
    assert "verified acme.greeter 0.1.0 (signed by trusted key" in installed.stdout
    assert "installed acme.greeter 0.1.0" in installed.stdout
    call = plugbay("call", "acme.greeter", "greet", "name=Ada", cwd=work)
    assert call.stdout.strip() == "Hello, Ada!", call.stderr


def test_install_refuses_a_tampered_wheel_and_leaves_nothing(work: Path) -> None:
    wheel = work / "dist" / WHEEL
    sign_wheel(wheel, work / "keys" / "alice.key")
    with wheel.open("r+b") as f:  # flip one byte of the first file's compressed data
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    result = plugbay("install", f"dist/{WHEEL}", "--allow-unsigned", cwd=work)
    assert result.returncode == 1
    assert "the wheel does not match its .sha256 digest" in result.stderr
    assert not (work / ".plugbay" / "store").exists()
    # without the digest beside it, the damage itself is named
    (work / "dist" / (WHEEL + ".sha256")).unlink()
    (work / "dist" / (WHEEL + ".sig")).unlink()
    result = plugbay("install", f"dist/{WHEEL}", "--allow-unsigned", cwd=work)
    assert result.returncode == 1 and "the wheel is damaged" in result.stderr, result.stderr
    assert not (work / ".plugbay" / "store").exists()
