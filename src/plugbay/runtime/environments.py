"""Each plugin its own Python dependencies: one environment per requirement set, built by uv.

A plugin declares its Python requirements (PEP 508) in its manifest
(``python-dependencies``, ``[project] dependencies``, or a wheel's ``Requires-Dist``).
Before a sandboxed plugin is ever started, the host builds a virtual environment
for its requirement set with uv (a dependency of plugbay) and starts its workers
from a zygote whose import path is that environment, then plugbay's runtime
packages (:data:`RUNTIME_PACKAGES`), and nothing else of the host's site-packages.

Layout, under the host's state directory::

    envs/<key>/                 a venv; <key> hashes the requirement set and the Python
    envs/<key>/plugbay-env.json the requirements it was built for, when, by which Python
    envs/.cache/                uv's cache: on the same file system, so an install is
                                hard links, and a second environment costs almost no disk
    envs/.runtime-<hash>/       plugbay's runtime packages, as links to the host's own
    envs/.build-<key>-*         an environment being built (renamed into place when whole)

Identical requirement sets share one environment. An environment is built in a
temporary directory and renamed into place only when uv succeeded, so a failed
build leaves nothing behind. A requirement on ``plugbay`` itself is checked
against the host's version and otherwise left out: the host provides plugbay.

An inline plugin shares the host's interpreter, so its requirements must fit the
host's own environment (:func:`check_fits_host`); when they do not, the error names
both requirement chains and the fix (run it sandboxed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from plugbay.api.errors import PlugbayError
from plugbay.isolation.base import EnvironmentPaths
from plugbay.model.manifest import PluginManifest
from plugbay.runtime.python_index import IndexSettings

if TYPE_CHECKING:
    from packaging.requirements import Requirement

# packaging's requirement parser and the shipping helpers (tarfile) load on first use: a
# host whose plugins declare no python-dependencies never needs them (plugbay run's
# start pays some 10 ms less before its first plugin)

__all__ = [
    "RUNTIME_PACKAGES",
    "Environment",
    "EnvironmentBuildError",
    "EnvironmentStore",
    "IndexSettings",
    "Package",
    "check_fits_host",
    "requirement_key",
]

#: what a worker imports of the host: plugbay's API and runtime, and what they import
RUNTIME_PACKAGES: Final = ("plugbay", "msgspec", "packaging", "typing_extensions")
_META: Final = "plugbay-env.json"
_PLUGBAY: Final = "plugbay"
#: lines of uv's output that say what went wrong (the rest is progress)
_UV_NOISE: Final = re.compile(
    r"^\s*(Using |Resolved |Prepared |Installed |Audited |Building |Built |Uninstalled |Downloading |Creating |Activate with|[+-] )"
)

Progress = Callable[[str], None]


class EnvironmentBuildError(PlugbayError):
    """A plugin's Python requirements cannot be met: its environment cannot be built
    (unresolvable, missing offline, a refused URL, a failed build), or an inline plugin's
    requirements do not fit the host's own environment."""

    code = "python_environment"


@dataclasses.dataclass(frozen=True)
class Package:
    name: str
    version: str
    requires: tuple[str, ...] = ()
    license: str = ""

    @property
    def purl(self) -> str:
        from packaging.utils import canonicalize_name

        return f"pkg:pypi/{canonicalize_name(self.name)}@{self.version}"


@dataclasses.dataclass(frozen=True)
class Environment:
    """One built environment: a venv holding one requirement set."""

    key: str
    path: Path
    requirements: tuple[str, ...]

    @property
    def site_packages(self) -> Path:
        # the venv scheme, whatever the interpreter's default is (Debian's is dist-packages)
        return Path(
            sysconfig.get_path(
                "purelib", scheme="venv", vars={"base": str(self.path), "platbase": str(self.path)}
            )
        )

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def packages(self) -> list[Package]:
        return _packages([str(self.site_packages)])

    def describe(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": str(self.path),
            "requirements": list(self.requirements),
            "packages": [dataclasses.asdict(p) for p in self.packages()],
        }


# --------------------------------------------------------------------------- requirements


def _parse(text: str, plugin: str, where: str) -> Requirement:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        raise EnvironmentBuildError(
            f"'{text}' is not a PEP 508 requirement: {exc}",
            plugin=plugin,
            where=where,
            hint="write a name and a version range, e.g. 'humanize>=4,<5'",
        ) from None


def _applies(req: Requirement) -> bool:
    return req.marker is None or req.marker.evaluate({"extra": ""})


def split_requirements(
    manifest: PluginManifest, host_version: str, settings: IndexSettings
) -> tuple[str, ...]:
    """The requirements uv installs for this plugin: checked against the policy, and
    without plugbay and its runtime (the host provides them, if their versions fit)."""
    from packaging.utils import canonicalize_name

    from plugbay.runtime.env_runtime import provided_by_host
    from plugbay.runtime.env_where import requirement_where

    out: list[str] = []
    for text in manifest.python_dependencies:
        req = _parse(text, manifest.id, manifest.location)
        if not _applies(req):
            continue
        if req.url is not None and not settings.allow_direct:
            raise EnvironmentBuildError(
                f"the requirement '{text}' is a URL or a local path, which the host's "
                "policy refuses",
                plugin=manifest.id,
                where=requirement_where(manifest, text),
                hint="publish the package to the index (or a --find-links directory) and "
                "require it by name and version, or let the operator set "
                "allow-direct-references = true in [python] of the host config",
                details={"requirement": text},
            )
        if canonicalize_name(req.name) == _PLUGBAY:
            if req.url is not None or not req.specifier.contains(host_version, prereleases=True):
                raise EnvironmentBuildError(
                    f"it requires '{text}', and this host is plugbay {host_version}",
                    plugin=manifest.id,
                    where=requirement_where(manifest, text),
                    hint="a plugin runs on the host's own plugbay: widen the range to "
                    f"include {host_version}, or run it on a host of a matching version",
                    details={"requirement": text, "host_version": host_version},
                )
            continue
        if not provided_by_host(req, text, manifest):  # msgspec…: the host's, like plugbay
            out.append(str(req))
    return tuple(sorted(dict.fromkeys(out)))


def requirement_key(requirements: Iterable[str]) -> str:
    """The environment's name: the same requirement set (in any order or spelling of
    whitespace) on the same Python, with the same packages of the host pinned, gives the
    same key."""
    from packaging.requirements import Requirement

    from plugbay.runtime.env_runtime import host_pins

    normal = sorted({str(Requirement(r)) for r in requirements})
    ident = {
        "requirements": normal,
        "python": sys.implementation.cache_tag,
        "executable": os.path.realpath(sys.executable),
        "pins": host_pins(),
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- the store


class EnvironmentStore:
    """``<state>/envs``: every environment built for this host, and uv's cache."""

    def __init__(
        self, root: Path, settings: IndexSettings | None = None, *, host_version: str
    ) -> None:
        self.root = Path(root)
        self.settings = settings or IndexSettings()
        self.host_version = host_version

    @property
    def cache(self) -> Path:
        return self.root / ".cache"

    def requirements_of(self, manifest: PluginManifest) -> tuple[str, ...]:
        return split_requirements(manifest, self.host_version, self.settings)

    def path_for(self, requirements: Sequence[str]) -> Path:
        return self.root / requirement_key(requirements)

    def find(self, manifest: PluginManifest) -> Environment | None:
        """The plugin's environment if it is built (None: none needed, or not built yet)."""
        reqs = self.requirements_of(manifest)
        if not reqs:
            return None
        return self._open(self.path_for(reqs))

    def _open(self, path: Path) -> Environment | None:
        try:
            meta = json.loads((path / _META).read_text())
            return Environment(path.name, path, tuple(meta["requirements"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def ensure(
        self, manifest: PluginManifest, progress: Progress | None = None
    ) -> Environment | None:
        """The plugin's environment, built now if it is not yet (None: it needs none).

        Every failure is an :class:`EnvironmentBuildError` with uv's explanation, and
        leaves nothing half-built behind.
        """
        reqs = self.requirements_of(manifest)
        if not reqs:
            return None
        target = self.path_for(reqs)
        found = self._open(target)
        if found is not None:
            return found
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / ".lock"):
            found = self._open(target)  # another process built it while we waited
            if found is not None:
                return found
            self._build(manifest, reqs, target, progress)
        built = self._open(target)
        assert built is not None
        return built

    def _build(
        self,
        manifest: PluginManifest,
        reqs: tuple[str, ...],
        target: Path,
        progress: Progress | None,
    ) -> None:
        from plugbay.runtime.env_runtime import constraint_args

        tmp = Path(tempfile.mkdtemp(prefix=f".build-{target.name}-", dir=self.root))
        say = progress or (lambda line: None)
        say(f"building the Python environment of {manifest.id} ({', '.join(reqs)})")
        try:
            self._uv(["venv", "--quiet", "--python", sys.executable, str(tmp)], manifest, reqs)
            args = [
                "pip",
                "install",
                "--python",
                str(tmp / "bin" / "python"),
                "--link-mode",
                "hardlink",
            ]
            s = self.settings
            for link in s.find_links:
                args += ["--find-links", link]
            if s.index_url:
                args += ["--index-url", s.index_url]
            if s.offline:  # find-links, and what uv's cache holds of the index
                args.append("--offline")
            args += [*constraint_args(tmp), "--", *reqs]
            self._uv(args, manifest, reqs, say)
            (tmp / _META).write_text(
                json.dumps(
                    {
                        "requirements": list(reqs),
                        "python": sys.version.split()[0],
                        "executable": os.path.realpath(sys.executable),
                        "created": time.time(),
                        "built-for": f"{manifest.id} {manifest.version}",
                    },
                    indent=2,
                )
            )
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        say(f"environment ready: {target}")

    def _uv(
        self,
        args: list[str],
        manifest: PluginManifest,
        reqs: Sequence[str],
        progress: Progress | None = None,
    ) -> None:
        env = {**os.environ, "UV_CACHE_DIR": str(self.cache), "UV_PYTHON_DOWNLOADS": "never",
               "UV_NO_CONFIG": "1", "NO_COLOR": "1"}  # fmt: skip
        env.pop("VIRTUAL_ENV", None)
        try:
            proc = subprocess.Popen(
                [_uv_bin(), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
        except OSError as exc:
            raise EnvironmentBuildError(
                f"cannot run uv: {exc}",
                plugin=manifest.id,
                hint="reinstall plugbay (uv is one of its dependencies)",
            ) from None
        lines: list[str] = []
        assert proc.stdout is not None
        with proc:
            for line in proc.stdout:
                lines.append(line.rstrip())
                if progress is not None and line.strip():
                    progress(line.rstrip())
        if proc.returncode != 0:
            from plugbay.runtime.env_runtime import explain_pins

            raise explain_pins(_explain(manifest, reqs, lines, self.settings))

    # ------------------------------------------------------------------ listing, gc

    def environments(self) -> list[Environment]:
        if not self.root.is_dir():
            return []
        out = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not path.is_dir():
                continue
            env = self._open(path)
            if env is not None:
                out.append(env)
        return out

    def gc(self, in_use: Iterable[str]) -> list[Path]:
        """Remove every environment no known plugin version uses, and leftovers of builds
        that were interrupted. Returns what was removed."""
        keep = set(in_use)
        removed = []
        if not self.root.is_dir():
            return []
        runtime = _runtime_name(_runtime_targets())
        for path in sorted(self.root.iterdir()):
            stale_build = path.name.startswith(".build-") and _older_than(path, 3600)
            # links to the runtime of another plugbay than this one (before an upgrade)
            stale_runtime = path.name.startswith(".runtime-") and path.name != runtime
            unused = not path.name.startswith(".") and path.is_dir() and path.name not in keep
            if stale_build or stale_runtime or unused:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        return removed

    # ------------------------------------------------------------------ the worker's runtime

    def worker_paths(self, env: Environment) -> EnvironmentPaths:
        """What the environment's zygote imports from, and its sandboxed workers may read."""
        from plugbay.isolation.shipping import links_read_paths

        runtime = self.runtime_dir()
        return EnvironmentPaths(
            str(env.site_packages),
            str(runtime),
            (os.path.realpath(env.path), *links_read_paths(runtime)),
        )

    def runtime_dir(self) -> Path:
        """A directory of links to the host's runtime packages (:data:`RUNTIME_PACKAGES`):
        what an environment's worker may import of the host, and nothing else."""
        from plugbay.isolation.shipping import link_dir

        targets = _runtime_targets()
        return link_dir(self.root / _runtime_name(targets), targets)


def _runtime_name(targets: Mapping[str, str]) -> str:
    return (
        ".runtime-" + hashlib.sha256(json.dumps(targets, sort_keys=True).encode()).hexdigest()[:12]
    )


def _runtime_targets() -> dict[str, str]:
    from plugbay.isolation.shipping import runtime_targets

    return runtime_targets(RUNTIME_PACKAGES)


def _uv_bin() -> str:
    import uv

    return str(uv.find_uv_bin())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def disk_usage(path: Path) -> tuple[int, int]:
    """(bytes only this environment holds, bytes it shares by hard links with uv's cache
    or other environments), by allocated blocks."""
    own = shared = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                shared += st.st_blocks * 512
            else:
                own += st.st_blocks * 512
    return own, shared


# --------------------------------------------------------------------------- explanations


def _explain(
    manifest: PluginManifest, reqs: Sequence[str], lines: list[str], settings: IndexSettings
) -> EnvironmentBuildError:
    """uv's failure as the resolver explains a range conflict: one paragraph naming who
    requires what and what is available (uv's own words, with "you" made the plugin)."""
    from plugbay.runtime.env_where import culprit, requirement_where

    said = _uv_said(lines)
    uv_hints = [h.removeprefix("hint:").strip(" .") for h in said if h.startswith("hint:")]
    causes = [
        line.removeprefix("cause:").strip().rstrip(".")
        for line in said
        if not line.startswith(("hint:", "[stderr]", "[stdout]"))
    ]
    who = f"'{manifest.id}' {manifest.version}"
    explanation = "; ".join(dict.fromkeys(c for c in causes if c))
    explanation = re.sub(r"\byou require\b", f"{who} requires", explanation)
    explanation = re.sub(r"\byour requirements\b", "its requirements", explanation)
    kind, message, hint = _failure_kind(explanation.lower(), _searched(settings))
    hint = "; ".join([hint, *uv_hints[:2], "nothing was left behind"])
    return EnvironmentBuildError(
        f"cannot build its Python environment ({', '.join(reqs)}): {message}: {explanation}",
        plugin=manifest.id,
        where=requirement_where(manifest, culprit(manifest, explanation)),
        hint=hint,
        details={"kind": kind, "requirements": list(reqs), "installer": "\n".join(lines)},
    )


def _uv_said(lines: list[str]) -> list[str]:
    """What uv said, without its noise, markers and build tracebacks (all of it when
    nothing else is left)."""
    said = [
        line.strip().removeprefix("error:").removeprefix("×").strip()
        for line in lines
        if line.strip() and not _UV_NOISE.match(line)
    ]
    return _without_stacks(said or [line.strip() for line in lines if line.strip()])


def _searched(settings: IndexSettings) -> str:
    """Where uv looked for packages, in words."""
    where = "offline: uv's cache" if settings.offline else "the configured index"
    if settings.find_links:
        where += f" and {', '.join(settings.find_links)}"
    return where


def _failure_kind(lower: str, where: str) -> tuple[str, str, str]:
    """The kind of failure uv's explanation (lower case) tells, the message and the hint."""
    if "failed to build" in lower or "build backend" in lower or "failed to run" in lower:
        return (
            "build",
            "a package it needs has no wheel and building it from source failed",
            "require a version that ships a wheel for this platform, or fix the package's build",
        )
    if (
        "not found in" in lower
        or ("no versions of" in lower and "available" not in lower)
        or "was not found" in lower
    ):
        return (
            "missing",
            f"a package it requires cannot be found ({where})",
            "add the package's wheel to a --find-links directory, or install without --offline"
            if where.startswith("offline")
            else "check the package's name in the manifest (the name 'pip install' takes), "
            "or add its wheel to a --find-links directory",
        )
    if "no solution found" in lower or "unsatisfiable" in lower:
        return (
            "unsatisfiable",
            "its Python requirements cannot all be satisfied",
            "relax the requirements in the manifest",
        )
    return "failed", "uv could not install its Python requirements", "uv's explanation says why"


def _without_stacks(lines: list[str]) -> list[str]:
    """A build backend's traceback, as its last line: the exception says what failed;
    the frames are the package's business (the details keep uv's whole output)."""
    out: list[str] = []
    in_stack = False
    for line in lines:
        if line.startswith("Traceback (most recent call last)"):
            in_stack = True
            continue
        if in_stack and not re.match(r"^\w+(\.\w+)*(Error|Exception|Exit|Interrupt)\b", line):
            continue
        in_stack = False
        out.append(line)
    return out


# --------------------------------------------------------------------------- the host's own environment


def _packages(path: list[str] | None) -> list[Package]:
    from packaging.utils import canonicalize_name

    found: dict[str, Package] = {}
    for dist in (
        importlib.metadata.distributions(path=path) if path else importlib.metadata.distributions()
    ):
        name = dist.metadata["Name"]
        if not name:
            continue
        key = canonicalize_name(name)
        if key in found:
            continue
        found[key] = Package(
            name,
            dist.version,
            tuple(dist.requires or ()),
            dist.metadata["License-Expression"] or dist.metadata["License"] or "",
        )
    return sorted(found.values(), key=lambda p: canonicalize_name(p.name))


def check_fits_host(manifest: PluginManifest, host_version: str) -> list[Package]:
    """An inline plugin's requirements against the host's own environment: the packages
    that satisfy them, or an error naming both requirement chains and the fix."""
    from packaging.utils import canonicalize_name

    from plugbay.runtime.env_where import requirement_where

    host = {canonicalize_name(p.name): p for p in _packages(None)}
    used: list[Package] = []
    for text in manifest.python_dependencies:
        req = _parse(text, manifest.id, manifest.location)
        if not _applies(req):
            continue
        name = canonicalize_name(req.name)
        have = host.get(name)
        if name == _PLUGBAY:
            have = Package(_PLUGBAY, host_version)
        ok = have is not None and req.url is None and _contains(req, have.version)
        if ok:
            assert have is not None
            used.append(have)
            continue
        plugin_chain = f"{manifest.id} {manifest.version} requires {text}"
        if have is None:
            host_chain = f"the host's environment has no {req.name} at all"
        else:
            wanted_by = [
                f"{p.name} {p.version} requires {r}"
                for p in host.values()
                for r in p.requires
                if _names(r) == name and _applies_text(r)
            ]
            host_chain = f"the host's environment has {have.name} {have.version}" + (
                f" ({'; '.join(wanted_by)})" if wanted_by else " (installed there directly)"
            )
        raise EnvironmentBuildError(
            f"runs inline, in the host's own interpreter, and its Python requirements do not "
            f"fit the host's environment: {plugin_chain}, but {host_chain}",
            plugin=manifest.id,
            where=requirement_where(manifest, text),
            hint="run it sandboxed, where it gets an environment of its own: take it out of "
            "[policy] inline in the host config (or out of the core/ folder); or require a "
            "version the host already has",
            details={"plugin_chain": plugin_chain, "host_chain": host_chain},
        )
    return used


def _contains(req: Requirement, version: str) -> bool:
    from packaging.version import InvalidVersion
    from packaging.version import Version as PyVersion

    try:
        return req.specifier.contains(PyVersion(version), prereleases=True)
    except InvalidVersion:
        return False


def _names(text: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        return str(canonicalize_name(Requirement(text).name))
    except InvalidRequirement:
        return ""


def _applies_text(text: str) -> bool:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return _applies(Requirement(text))
    except InvalidRequirement:
        return False


def python_info(
    manifest: PluginManifest | None, envs: EnvironmentStore | None, *, inline: bool
) -> dict[str, Any] | None:
    """A plugin's Python requirements, its environment and the packages in it (what
    ``plugbay info`` shows and ``--sbom`` writes); read from disk, nothing is built."""
    if manifest is None or not manifest.python_dependencies:
        return None
    out: dict[str, Any] = {
        "requirements": list(manifest.python_dependencies),
        "environment": None,
        "packages": [],
    }
    try:
        if inline:
            out["environment"] = "the host's own (inline)"
            packages = check_fits_host(manifest, envs.host_version if envs else _plugbay_version())
            out["packages"] = [dataclasses.asdict(p) | {"direct": True} for p in packages]
            return out
        env = envs.find(manifest) if envs is not None else None
    except PlugbayError as exc:
        out["problem"] = str(exc)
        return out
    if env is not None:
        direct = {_canonical(r) for r in env.requirements}
        out["environment"] = str(env.path)
        out["packages"] = [
            dataclasses.asdict(p) | {"direct": _canonical(p.name) in direct} for p in env.packages()
        ]
    return out


def _plugbay_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("plugbay")


def _canonical(requirement: str) -> str:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(Requirement(requirement).name))
