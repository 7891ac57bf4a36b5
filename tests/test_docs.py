"""Every code block of README.md and docs/*.md runs as written (tests/_docblocks.py says how),
the manifest reference is what the model generates, every member of PluginContext is
documented, and `make docs` builds the site offline."""

from __future__ import annotations

import collections
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from plugbay.api import PluginContext
from plugbay.pdk import manifest_reference
from tests._docblocks import DOCS, REPO, Block, blocks, environment, prepare, script

#: run by tests/test_plugin_authors_guide.py, which also checks what each command prints
GUIDE = REPO / "docs" / "plugin-authors.md"
#: every block that runs, over all documents; a change here is a change of the docs
BLOCKS_RUN = 105


def all_blocks() -> list[Block]:
    return [block for doc in DOCS for block in blocks(doc)]


def test_every_block_runs_or_says_why_not() -> None:
    found = all_blocks()
    unmarked = [f"{b.where} ({b.lang})" for b in found if b.kind == "unmarked"]
    assert not unmarked, (
        "a code block that neither runs nor says why: "
        + ", ".join(unmarked)
        + ". Give it a language that runs (python, toml, sh, json) or mark it "
        "<!-- doc: not run: REASON -->"
    )
    kinds = collections.Counter(b.kind for b in found)
    by_lang = collections.Counter(b.lang for b in found if b.kind == "run")
    print(f"\ndocs: {kinds['run']} code blocks run ({dict(sorted(by_lang.items()))}), "
          f"{kinds['not run']} marked not run, {kinds['output']} output or diagrams")  # fmt: skip
    for b in found:
        if b.kind == "not run":
            print(f"  not run: {b.where}: {b.not_run}")
    assert kinds["run"] == BLOCKS_RUN
    assert all(b.not_run for b in found if b.kind == "not run")


def _doc_id(doc: Path) -> str:
    return str(doc.relative_to(REPO))


@pytest.mark.slow
@pytest.mark.parametrize("doc", [d for d in DOCS if d != GUIDE], ids=_doc_id)
def test_the_document_runs_as_written(doc: Path, tmp_path: Path) -> None:
    found = blocks(doc)
    runs = [b for b in found if b.kind == "run"]
    if not runs:
        pytest.skip(f"{_doc_id(doc)} has no block that runs")
    work = tmp_path / "work"
    prepare(doc, work)
    result = subprocess.run(
        ["bash", "-c", script(found, tmp_path / "blocks")],
        cwd=work, env=environment(work), input="c\nc\nc\n", capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    out = result.stdout
    ran = re.findall(r">>> \[block (\S+) ", out)
    failed_at = ran[-1] if ran else "before the first block"
    assert result.returncode == 0, (
        f"{failed_at} failed:\n" + out[-5000:] + "\n--- stderr\n" + result.stderr[-5000:]
    )
    assert ran == [b.where for b in runs]  # every block ran, in order


def test_every_plugin_context_member_is_documented() -> None:
    page = (REPO / "docs" / "plugin-context.md").read_text()
    members = sorted(
        {f.name for f in dataclasses.fields(PluginContext) if not f.name.startswith("_")}
        | {n for n in vars(PluginContext) if not n.startswith("_") and callable(getattr(PluginContext, n))}
    )  # fmt: skip
    print("\nPluginContext members documented:", ", ".join(members))
    missing = [m for m in members if f"## `context.{m}`" not in page]
    assert not missing, f"document each in docs/plugin-context.md (## `context.NAME`): {missing}"
    assert {"config", "logger", "secrets", "environment", "storage", "services", "tasks"} <= set(
        members
    )


def test_the_manifest_reference_is_generated_from_the_model() -> None:
    assert manifest_reference.undocumented() == []
    written = (REPO / "docs" / "manifest.md").read_text()
    assert written == manifest_reference.generate(), (
        "docs/manifest.md is not what the manifest model generates: run `make docs` "
        "(or python -m plugbay.pdk.manifest_reference > docs/manifest.md)"
    )
    for path, _field in manifest_reference.manifest_keys():
        assert f"| `{path}` |" in written


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    text = (REPO / "README.md").read_text()
    first = blocks(REPO / "README.md")[0].body.splitlines()
    assert first[0].startswith("make run") and first[1].startswith("make test")
    assert len(text.encode()) < 8000, "the README stays short: reference goes to docs/"
    plugin = [b for b in blocks(REPO / "README.md") if b.file and b.file.startswith("plugins/")]
    assert sum(len([ln for ln in b.body.splitlines() if ln.strip()]) for b in plugin) <= 20


def test_every_relative_link_resolves() -> None:
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{_doc_id(doc)}: broken link {target}"


@pytest.mark.slow
def test_make_docs_builds_the_site_offline(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    for name in ("index.html", "plugin-context.html", "manifest.html", "operators.html",
                 "applications.html", "architecture.html"):  # fmt: skip
        assert name in pages, sorted(pages)
    # offline: nothing is loaded from another host
    for page in site.rglob("*.html"):
        loads = re.findall(
            r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', page.read_text()
        )
        assert not loads, f"{page.name} loads {loads}"
