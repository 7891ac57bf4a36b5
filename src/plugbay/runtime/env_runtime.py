"""What a plugin's environment may hold of the packages the host provides to its workers.

A worker runs plugbay's runtime from the host (:data:`RUNTIME_PACKAGES
<plugbay.runtime.environments.RUNTIME_PACKAGES>`: plugbay, msgspec, packaging,
typing_extensions), and the frames it trades with the host are msgspec's: an environment
holding another msgspec than the host's would be imported first by the worker, which then
cannot read the host's frames ("its worker broke the protocol"). So the host provides
these packages, as it provides plugbay itself:

* a plugin's own requirement on one of them is checked against the host's version and
  left out of its environment, or refused before uv runs, naming both sides, when its
  range excludes the host's version (:func:`provided_by_host`);
* uv resolves every environment with each of them pinned to the host's version
  (:func:`constraint_args`), so a library that needs another version is refused at
  install with uv's explanation and where the pin comes from (:func:`explain_pins`);
* the host's versions are part of an environment's key (:func:`host_pins`): after an
  upgrade of the host's msgspec, environments are built again.
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from packaging.requirements import Requirement

    from plugbay.model.manifest import PluginManifest
    from plugbay.runtime.environments import EnvironmentBuildError

__all__ = ["constraint_args", "explain_pins", "host_pins", "provided_by_host"]

#: the runtime packages pinned here (plugbay itself: ``environments.split_requirements``)
_PINNED: Final = ("msgspec", "packaging", "typing_extensions")
_CONSTRAINTS: Final = "plugbay-host-pins.txt"


@functools.cache
def host_pins() -> dict[str, str]:
    """Each package the host provides to workers besides plugbay (canonical name) → the
    host's version of it."""
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for name in _PINNED:
        try:
            pins[str(canonicalize_name(name))] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def provided_by_host(req: Requirement, text: str, manifest: PluginManifest) -> bool:
    """Whether the host provides this requirement's package to the plugin's worker (it is
    then left out of the environment); an error naming both sides when the plugin's range
    excludes the host's version."""
    from packaging.utils import canonicalize_name

    from plugbay.runtime.env_where import requirement_where
    from plugbay.runtime.environments import EnvironmentBuildError

    name = str(canonicalize_name(req.name))
    have = host_pins().get(name)
    if have is None:
        return False
    if req.url is None and req.specifier.contains(have, prereleases=True):
        return True
    raise EnvironmentBuildError(
        f"it requires '{text}', but its worker imports the host's {name} {have} (one of the "
        "packages of plugbay's runtime, which the host provides to every plugin), never a "
        "version of its own",
        plugin=manifest.id,
        where=requirement_where(manifest, text),
        hint=f"widen the range to include {name} {have} (or drop the requirement: the host "
        f"provides {name}), or run it on a host whose {name} is in that range",
        details={"requirement": text, "host_version": have, "package": name},
    )


def constraint_args(directory: Path) -> list[str]:
    """uv's arguments pinning each package the host provides to the host's version (the
    constraints file is written in ``directory``, the environment being built)."""
    pins = host_pins()
    if not pins:
        return []
    path = directory / _CONSTRAINTS
    path.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    return ["--constraints", str(path)]


def explain_pins(error: EnvironmentBuildError) -> EnvironmentBuildError:
    """uv's explanation names a host pin as if the plugin required it: say where it comes
    from, and what to do."""
    lower = error.message.lower()
    named = [(n, v) for n, v in sorted(host_pins().items()) if f"{n}=={v}" in lower]
    if not named:
        return error
    pins = ", ".join(f"{n}=={v}" for n, v in named)
    error.message += (
        f" ({pins}: the host's own, which its worker imports; an environment holds no "
        "other version)"
    )
    which = ", ".join(f"{n} {v}" for n, v in named)
    error.hint = (
        f"require versions that work with the host's {which}, or upgrade the host's "
        f"packages to what they need; {error.hint}"
    )
    error.details["host_pins"] = dict(named)
    return error
