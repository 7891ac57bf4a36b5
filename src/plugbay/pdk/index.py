"""A plugin index: plugin wheels and their manifests, as static files any web server serves.

``plugbay index build DIR`` reads every plugin wheel in ``DIR`` and writes, beside them::

    DIR/plugbay-index.json                 every plugin version: its manifest (TOML text),
                                           wheel file, SHA-256 and whether a .sig is there
    DIR/<wheel>.plugin.toml                each wheel's manifest on its own
    DIR/simple/index.html, index.json      PEP 503 / PEP 691 project list
    DIR/simple/<project>/index.html, .json the project's wheels, with their sha256

so ``python -m http.server -d DIR`` (or nginx, or a bucket) is an index, and so is
the directory itself. A host resolves against ``plugbay-index.json`` alone: the
manifests carry the dependencies, host range and permissions, so nothing is
downloaded until a plan is chosen. pip reads ``DIR/simple`` like any simple index.

Everything read from an index is untrusted: a wheel path must be a plain file
name beside the index, sizes are bounded, each downloaded wheel must have the
digest the index names, and it is then verified like any wheel
(:func:`plugbay.pdk.signing.verify_wheel`) before a store takes it.
"""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urljoin, urlparse

from plugbay.api.errors import PlugbayError
from plugbay.model.manifest import PluginManifest, parse_manifest
from plugbay.model.resolve import resolve
from plugbay.model.versions import Range, Version
from plugbay.pdk.errors import PluginIndexError
from plugbay.pdk.wheels import file_sha256, inspect_wheel

__all__ = [
    "INDEX_FILE",
    "IndexEntry",
    "InstallPlan",
    "PluginIndex",
    "build_index",
    "parse_requirement",
    "plan_install",
]

INDEX_FILE: Final = "plugbay-index.json"
FORMAT: Final = "plugbay-index/1"
#: an index document larger than this is refused before it is parsed
MAX_INDEX_BYTES: Final = 64 << 20
#: a wheel larger than this is refused while it downloads
MAX_WHEEL_BYTES: Final = 256 << 20
_TIMEOUT: Final = 30.0
_PLAIN_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One plugin version in an index: its manifest, and the wheel that carries it."""

    manifest: PluginManifest
    manifest_text: str
    wheel: str
    sha256: str
    signed: bool = False
    distribution: str = ""

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def version(self) -> Version:
        return self.manifest.version

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "id": m.id,
            "version": str(m.version),
            "type": m.type,
            "name": m.name,
            "description": m.description,
            "capabilities": list(m.capabilities),
            "dependencies": {k: str(v) for k, v in m.dependencies.items()},
            "host": str(m.host),
            "permissions": m.permissions.asked(),
            "wheel": self.wheel,
            "sha256": self.sha256,
            "signed": self.signed,
            "distribution": self.distribution,
            "manifest": self.manifest_text,
        }


# --------------------------------------------------------------------------- build


def build_index(directory: Path) -> list[IndexEntry]:
    """Write the index files for every plugin wheel in ``directory``; returns its entries.

    A file that is not a plugin wheel is refused with its reason (an index that
    silently leaves a wheel out would make a plugin vanish); so are two wheels of
    one plugin version. The files are replaced atomically, so a server never hands
    out half an index.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PluginIndexError(
            "there is no such directory",
            where=str(directory),
            hint="put the plugin wheels ('plugbay build') in a directory and name it",
        )
    entries: list[IndexEntry] = []
    seen: dict[tuple[str, str], str] = {}
    for wheel in sorted(directory.glob("*.whl")):
        info = inspect_wheel(wheel)
        key = (info.manifest.id, str(info.manifest.version))
        if key in seen:
            raise PluginIndexError(
                f"{key[0]} {key[1]} is in two wheels: {seen[key]} and {wheel.name}",
                plugin=key[0],
                where=str(directory),
                hint="keep one wheel per plugin version in the index directory",
            )
        seen[key] = wheel.name
        entries.append(
            IndexEntry(
                manifest=info.manifest,
                manifest_text=info.manifest_text,
                wheel=wheel.name,
                sha256=file_sha256(wheel),
                signed=wheel.with_name(wheel.name + ".sig").is_file(),
                distribution=info.distribution,
            )
        )
    _write_index(directory, entries)
    return entries


def _write_index(directory: Path, entries: Sequence[IndexEntry]) -> None:
    document = {"format": FORMAT, "plugins": [e.to_dict() for e in entries]}
    _write(directory / INDEX_FILE, json.dumps(document, indent=1, sort_keys=True) + "\n")
    for e in entries:
        _write(directory / f"{e.wheel}.plugin.toml", e.manifest_text)
    projects: dict[str, list[IndexEntry]] = {}
    for e in entries:
        projects.setdefault(_project(e.distribution), []).append(e)
    simple = directory / "simple"
    meta = {"api-version": "1.1"}
    names = sorted(projects)
    _write(
        simple / "index.json",
        json.dumps({"meta": meta, "projects": [{"name": n} for n in names]}) + "\n",
    )
    _write(simple / "index.html", _page("Simple index", [(f"{n}/", n) for n in names]))
    for name, files in projects.items():
        page = simple / name
        rows = [
            {"filename": e.wheel, "url": f"../../{e.wheel}", "hashes": {"sha256": e.sha256}}
            for e in files
        ]
        versions = sorted({str(e.version) for e in files})
        _write(
            page / "index.json",
            json.dumps({"meta": meta, "name": name, "versions": versions, "files": rows}) + "\n",
        )
        links = [(f"../../{e.wheel}#sha256={e.sha256}", e.wheel) for e in files]
        _write(page / "index.html", _page(f"Links for {name}", links))


def _project(distribution: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(distribution))


def _page(title: str, links: Iterable[tuple[str, str]]) -> str:
    body = "\n".join(
        f'    <a href="{html.escape(href)}">{html.escape(text)}</a><br>' for href, text in links
    )
    return (
        '<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" '
        f'content="1.1">\n    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n'
        f"{body}\n  </body>\n</html>\n"
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".plugbay-index-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- read


@dataclass(slots=True)
class PluginIndex:
    """An index read from a directory or a URL (``http(s)://…/`` or ``file://…``)."""

    location: str
    entries: list[IndexEntry] = field(default_factory=list)

    @classmethod
    def open(cls, location: str | Path) -> PluginIndex:
        """Read ``plugbay-index.json`` at ``location``; nothing else is downloaded."""
        where = str(location)
        data = _read_bytes(_join(where, INDEX_FILE), MAX_INDEX_BYTES, what="the index")
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PluginIndexError(
                f"the index is not valid JSON: {exc}",
                where=_join(where, INDEX_FILE),
                hint="rebuild it with 'plugbay index build DIR'",
            ) from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise PluginIndexError(
                f"not a plugbay index (format is not {FORMAT!r})",
                where=_join(where, INDEX_FILE),
                hint=f"rebuild it with 'plugbay index build DIR' (this plugbay reads {FORMAT})",
            )
        rows = document.get("plugins")
        if not isinstance(rows, list):
            raise PluginIndexError(
                "the index has no list of plugins", where=_join(where, INDEX_FILE)
            )
        return cls(where, [_entry(row, where, n) for n, row in enumerate(rows)])

    def ids(self) -> list[str]:
        return sorted({e.id for e in self.entries})

    def versions(self, plugin_id: str) -> list[IndexEntry]:
        """The entries of one plugin, newest first."""
        return sorted((e for e in self.entries if e.id == plugin_id), key=lambda e: e.version)[::-1]

    def search(self, text: str) -> list[IndexEntry]:
        """The newest version of each plugin whose id, name, description, type or
        capabilities hold every word of ``text`` (case-insensitive); best match first."""
        words = text.lower().split()
        found: list[tuple[int, IndexEntry]] = []
        for pid in self.ids():
            newest = self.versions(pid)[0]
            m = newest.manifest
            haystack = " ".join([m.id, m.name, m.description, m.type, *m.capabilities]).lower()
            if all(w in haystack for w in words):
                rank = 0 if any(w in m.id.lower() for w in words) else 1
                found.append((rank, newest))
        return [e for _, e in sorted(found, key=lambda x: (x[0], x[1].id))]

    def url_of(self, entry: IndexEntry) -> str:
        return _join(self.location, entry.wheel)

    def download(self, entry: IndexEntry, dest: Path) -> Path:
        """The entry's wheel (and its ``.sig`` when the index says it is signed) in ``dest``.

        Refused when the wheel's digest is not the one the index names.
        """
        wheel = Path(dest) / entry.wheel
        wheel.write_bytes(_read_bytes(self.url_of(entry), MAX_WHEEL_BYTES, what="the wheel"))
        digest = file_sha256(wheel)
        if digest != entry.sha256:
            wheel.unlink()
            raise PluginIndexError(
                f"the wheel of {entry.id} {entry.version} does not have the digest the index "
                f"names ({digest[:12]}… ≠ {entry.sha256[:12]}…): it changed after the index "
                "was built",
                plugin=entry.id,
                where=self.url_of(entry),
                hint="do not install it; ask the index's owner to rebuild the index",
            )
        if entry.signed:
            sig = _read_bytes(self.url_of(entry) + ".sig", 1 << 16, what="the signature")
            wheel.with_name(wheel.name + ".sig").write_bytes(sig)
        return wheel


def _entry(row: Any, where: str, n: int) -> IndexEntry:
    here = f"{_join(where, INDEX_FILE)} (plugin #{n + 1})"
    if not isinstance(row, dict):
        raise PluginIndexError("an index entry is not an object", where=here)
    wheel, digest, text = row.get("wheel"), row.get("sha256"), row.get("manifest")
    if not isinstance(wheel, str) or not _PLAIN_NAME.match(wheel) or not wheel.endswith(".whl"):
        raise PluginIndexError(
            f"the entry's wheel {wheel!r} is not a plain .whl file name beside the index",
            where=here,
            hint="an index only names wheels in its own directory; rebuild it",
        )
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise PluginIndexError("the entry has no SHA-256 digest", where=here)
    if not isinstance(text, str):
        raise PluginIndexError("the entry carries no manifest", where=here)
    try:
        manifest = parse_manifest(text, origin="wheel", distribution=f"{where}!{wheel}")
    except PlugbayError as exc:
        raise PluginIndexError(
            f"the manifest of {wheel} does not validate: {exc.message}",
            where=here,
            hint=exc.hint or "rebuild the index",
        ) from None
    return IndexEntry(
        manifest=manifest,
        manifest_text=text,
        wheel=wheel,
        sha256=digest,
        signed=bool(row.get("signed")),
        distribution=str(row.get("distribution") or ""),
    )


def _is_url(location: str) -> bool:
    return urlparse(location).scheme in ("http", "https", "file")


def _join(location: str, name: str) -> str:
    if _is_url(location):
        return urljoin(location if location.endswith("/") else location + "/", name)
    return str(Path(location) / name)


def _read_bytes(location: str, limit: int, *, what: str) -> bytes:
    parsed = urlparse(location)
    if parsed.scheme in ("http", "https"):
        return _http_get(location, limit, what=what)
    path = Path(parsed.path) if parsed.scheme == "file" else Path(location)
    try:
        size = path.stat().st_size
        if size > limit:
            raise PluginIndexError(
                f"{what} is {size:,} bytes, more than the {limit:,} allowed", where=location
            )
        return path.read_bytes()
    except OSError as exc:
        raise PluginIndexError(
            f"cannot read {what}: {exc.strerror}",
            where=location,
            hint="give the index's directory or URL (where 'plugbay index build' wrote "
            f"{INDEX_FILE})",
        ) from None


def _http_get(url: str, limit: int, *, what: str) -> bytes:
    import httpx

    try:
        with httpx.stream("GET", url, timeout=_TIMEOUT, follow_redirects=True) as response:
            if response.status_code != 200:
                raise PluginIndexError(
                    f"cannot fetch {what}: the server answered {response.status_code}",
                    where=url,
                    hint="check the index URL; 'plugbay index build DIR' writes "
                    f"{INDEX_FILE} at the top of the served directory",
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise PluginIndexError(
                        f"{what} is larger than the {limit:,} bytes allowed", where=url
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise PluginIndexError(
            f"cannot fetch {what}: {exc}",
            where=url,
            hint="check that the index's server runs and the URL is right",
        ) from None


# --------------------------------------------------------------------------- resolve


def parse_requirement(text: str) -> tuple[str, Range]:
    """``ID@RANGE`` (or ``ID``: any version) as an id and a range."""
    plugin_id, _, spelled = text.partition("@")
    plugin_id = plugin_id.strip()
    if not plugin_id:
        raise PluginIndexError(
            f"'{text}' names no plugin",
            hint="write ID or ID@RANGE, for example acme.greeter@^1.2",
        )
    try:
        return plugin_id, Range.parse(spelled.strip() or "*")
    except PlugbayError as exc:
        raise PluginIndexError(
            f"'{spelled}' is not a version range: {exc.message}",
            plugin=plugin_id,
            hint="write a range such as ^1.2, ~1.2.3, >=1,<2 or 1.2.3",
        ) from None


@dataclass(frozen=True, slots=True)
class InstallPlan:
    """What installing ``ID@RANGE`` from an index takes: the entries to download, in
    order (dependencies first), and what the store already has."""

    target: IndexEntry
    downloads: list[IndexEntry]
    present: dict[str, str]
    notes: dict[str, list[str]] = field(default_factory=dict)


def plan_install(
    index: PluginIndex,
    plugin_id: str,
    wanted: Range,
    *,
    installed: Iterable[PluginManifest],
    host_version: Version,
) -> InstallPlan:
    """Resolve ``plugin_id`` in ``wanted`` against the index and what is installed, with the
    host's resolver: the same choices, and the same explanation when nothing fits."""
    here = list(installed)
    fits, local = _candidates(index, plugin_id, wanted, here)
    by_manifest = {id(e.manifest): e for e in fits}
    plan = resolve(
        [e.manifest for e in fits] + local, host_version=host_version, requested=[plugin_id]
    )
    if plugin_id in plan.failures:
        raise plan.failures[plugin_id]
    chosen = plan.selected[plugin_id]
    target = by_manifest.get(id(chosen))
    if target is None:
        raise PluginIndexError(
            f"{plugin_id} {chosen.version} is installed already, and it is the newest "
            f"version that matches {wanted}",
            plugin=plugin_id,
            where=index.location,
            hint=f"'plugbay upgrade {plugin_id} {chosen.version}' serves it",
        )
    # in load order (dependencies first); what the store has already is not downloaded
    selected = [plan.selected[p] for p in plan.order if p in plan.selected]
    downloads = [by_manifest[id(m)] for m in selected if id(m) in by_manifest]
    present = {m.id: str(m.version) for m in selected if id(m) not in by_manifest}
    return InstallPlan(target, downloads, present, dict(plan.notes))


def _candidates(
    index: PluginIndex, plugin_id: str, wanted: Range, here: list[PluginManifest]
) -> tuple[list[IndexEntry], list[PluginManifest]]:
    """The index's entries the store does not have, and the installed manifests; of
    ``plugin_id``, only the versions in ``wanted``. Refused when it has none at all."""
    known = _known(index, plugin_id, here)
    have = {(m.id, str(m.version)) for m in here}
    offered = [e for e in index.entries if (e.id, str(e.version)) not in have]
    fits = [e for e in offered if e.id != plugin_id or wanted.contains(e.version)]
    local = [m for m in here if m.id != plugin_id or wanted.contains(m.version)]
    if plugin_id not in {e.id for e in fits} | {m.id for m in local}:
        listed = ", ".join(str(v) for v in sorted(set(known), reverse=True))
        raise PluginIndexError(
            f"no version of {plugin_id} matches {wanted}; versions found: {listed}",
            plugin=plugin_id,
            where=index.location,
            hint=f"ask for a range these meet, for example {plugin_id}@{listed.split(', ')[0]}",
        )
    return fits, local


def _known(index: PluginIndex, plugin_id: str, here: list[PluginManifest]) -> list[Version]:
    """Every version of ``plugin_id`` in the index or the store; refused when there is none."""
    known = [e.version for e in index.entries if e.id == plugin_id]
    known += [m.version for m in here if m.id == plugin_id]
    if not known:
        raise PluginIndexError(
            f"there is no plugin '{plugin_id}' in the index",
            plugin=plugin_id,
            where=index.location,
            hint=_similar(index, plugin_id),
        )
    return known


def _similar(index: PluginIndex, plugin_id: str) -> str:
    import difflib

    close = difflib.get_close_matches(plugin_id, index.ids(), n=3)
    if close:
        return f"did you mean {', '.join(close)}? 'plugbay search TEXT --index …' lists plugins"
    return "'plugbay search TEXT --index …' lists the plugins it has"
