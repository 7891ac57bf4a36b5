"""Resolution: newest-first choice, backtracking, explanations, cycles; properties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugbay.api import PluginDependency
from plugbay.api.errors import (
    LIST_THE_PLUGINS,
    DependencyCycleError,
    DuplicatePluginError,
    MissingDependencyError,
    PlugbayError,
    PluginNotFound,
    ResolutionError,
)
from plugbay.model.manifest import PluginManifest, manifest_from_mapping
from plugbay.model.registry import PluginRegistry
from plugbay.model.resolve import resolve
from plugbay.model.versions import Version

HOST = Version.parse("0.1.0")


def m(
    pid: str,
    version: str = "1.0.0",
    deps: dict[str, str] | None = None,
    *,
    optional: dict[str, str] | None = None,
    host: str = "*",
    provides: dict[str, str] | None = None,
    requires: dict[str, str] | None = None,
) -> PluginManifest:
    data: dict[str, Any] = {
        "id": pid,
        "version": version,
        "type": "utility",
        "entry": "m:P",
        "host": host,
        "dependencies": deps or {},
        "optional-dependencies": optional or {},
        "services": {"provides": provides or {}, "requires": requires or {}},
    }
    return manifest_from_mapping(data)


def chosen(plan: Any) -> dict[str, str]:
    return {k: str(v.version) for k, v in plan.selected.items()}


def test_newest_versions_are_preferred_and_ordered() -> None:
    plan = resolve(
        [
            m("a", "1.0.0"),
            m("a", "1.3.0"),
            m("b", "2.0.0", {"a": "^1.0"}),
            m("c", "1.0.0", {"b": "*"}),
        ],
        host_version=HOST,
    )
    assert chosen(plan) == {"a": "1.3.0", "b": "2.0.0", "c": "1.0.0"}
    assert plan.order == ["a", "b", "c"]
    assert plan.dependents("a", transitive=True) == ["b", "c"]
    assert plan.dependents("a") == ["b"]


def test_backtracking_picks_an_older_version_when_the_newest_conflicts() -> None:
    plan = resolve(
        [
            m("a", "2.0.0", {"c": "^2"}),
            m("a", "1.0.0", {"c": "^1"}),
            m("b", "1.0.0", {"c": "^1"}),
            m("c", "1.5.0"),
            m("c", "2.0.0"),
        ],
        host_version=HOST,
    )
    assert chosen(plan) == {"a": "1.0.0", "b": "1.0.0", "c": "1.5.0"}
    assert not plan.failures


def test_conflict_is_explained_naming_who_wants_what() -> None:
    plan = resolve(
        [
            m("acme.app", "1.0.0", {"acme.lib": "^2.0", "acme.mid": "*"}),
            m("acme.mid", "1.0.0", {"acme.lib": "~1.1"}),
            m("acme.lib", "1.1.3"),
            m("acme.lib", "2.0.0"),
            m("acme.ok", "1.0.0"),
        ],
        host_version=HOST,
    )
    assert chosen(plan) == {"acme.lib": "2.0.0", "acme.mid": "1.0.0", "acme.ok": "1.0.0"} or chosen(plan) == {
        "acme.lib": "1.1.3", "acme.mid": "1.0.0", "acme.ok": "1.0.0"
    }  # fmt: skip
    err = plan.failures["acme.app"]
    assert isinstance(err, ResolutionError)
    assert str(err).startswith("plugin 'acme.app': cannot be loaded: ")
    assert "'acme.app' 1.0.0 requires 'acme.lib' ^2.0" in str(err)
    assert "'acme.mid' 1.0.0 requires 'acme.lib' ~1.1" in str(err)
    assert "versions found: 2.0.0, 1.1.3 — none satisfies every requirement" in str(err)
    assert err.details["available"]["acme.lib"] == ["2.0.0", "1.1.3"]


def test_missing_dependency_and_missing_service() -> None:
    plan = resolve(
        [m("a", "1.0.0", {"ghost": "^2"}), m("b", "1.0.0", requires={"speech": "^1"}), m("ok")],
        host_version=HOST,
    )
    a, b = plan.failures["a"], plan.failures["b"]
    assert isinstance(a, MissingDependencyError)
    assert str(a) == (
        "plugin 'a': cannot be loaded: 'a' 1.0.0 requires 'ghost' ^2; no plugin 'ghost' is installed "
        "(at manifest of a). install 'ghost', or remove the dependency: ^2 under [dependencies] in manifest of a"
    )
    assert isinstance(b, MissingDependencyError)
    assert "'b' 1.0.0 requires service 'speech' ^1; no plugin provides it" in str(b)
    assert plan.order == ["ok"]


def test_an_empty_range_is_its_text_to_fix_not_a_version_to_install(tmp_path: Path) -> None:
    toml = tmp_path / "user" / "plugin.toml"
    user = manifest_from_mapping(
        {"id": "acme.user", "version": "1.0.0", "type": "utility", "entry": "m:P",
         "dependencies": {"acme.greeter": ">=2 <1"}},
        path=toml,
    )  # fmt: skip
    plan = resolve(
        [user, m("acme.greeter", "1.0.0"), m("acme.greeter", "3.0.0")], host_version=HOST
    )
    err = plan.failures["acme.user"]
    assert isinstance(err, ResolutionError) and not isinstance(err, MissingDependencyError)
    assert str(err).startswith(
        "plugin 'acme.user': cannot be loaded: 'acme.user' 1.0.0 requires 'acme.greeter' >=2 <1, "
        "a range that matches no version at all (it is empty)"
    )
    assert err.hint is not None and f"correct that range under [dependencies] in {toml}" in err.hint
    assert "install a version" not in err.hint and "relax" not in err.hint
    assert chosen(plan) == {"acme.greeter": "3.0.0"}


@pytest.mark.parametrize(
    ("written", "why"),
    [
        (">=2,<1", "'>=2' and '<1' leave no version between them"),
        ("<0.0.0", "below 0.0.0 there are only 0.0.0's own pre-releases, which '<0.0.0'"),
        ("==1.0,!=1.0", "no version is in '==1.0' and '!=1.0' at once"),
        (">1,<1.0.0.post0", "no version is in '>1' and '<1.0.0.post0' at once"),
    ],
)
def test_a_range_with_no_room_is_called_empty_not_unmatched(
    tmp_path: Path, written: str, why: str
) -> None:
    toml = tmp_path / "user" / "plugin.toml"
    user = manifest_from_mapping(
        {"id": "acme.user", "version": "1.0.0", "type": "utility", "entry": "m:P",
         "dependencies": {"acme.greeter": written}},
        path=toml,
    )  # fmt: skip
    plan = resolve([user, m("acme.greeter", "1.0.0")], host_version=HOST)
    err = plan.failures["acme.user"]
    assert str(err).startswith(
        f"plugin 'acme.user': cannot be loaded: 'acme.user' 1.0.0 requires 'acme.greeter' "
        f"{written}, a range that matches no version at all (it is empty)"
    )
    assert "versions found" not in str(err)
    assert err.hint is not None
    assert err.hint.startswith(f"correct that range under [dependencies] in {toml}: {why}")
    assert "write the versions it works with, e.g. '>=1.2,<2'" in err.hint


def test_host_version_filters_candidates_and_says_so() -> None:
    plan = resolve(
        [m("x", "2.0.0", host=">=2"), m("x", "1.0.0"), m("y", "1.0.0", {"x": "^2"})],
        host_version=HOST,
    )
    assert chosen(plan) == {"x": "1.0.0"}
    assert "2.0.0 (needs host >=2, this host is 0.1.0)" in str(plan.failures["y"])


def test_pins_are_kept_while_they_fit() -> None:
    ms = [m("a", "1.0.0"), m("a", "1.1.0"), m("b", "1.0.0", {"a": ">=1.0"})]
    assert (
        chosen(resolve(ms, host_version=HOST, pinned={"a": Version.parse("1.0.0")}))["a"] == "1.0.0"
    )
    ms.append(m("c", "1.0.0", {"a": ">=1.1"}))
    assert (
        chosen(resolve(ms, host_version=HOST, pinned={"a": Version.parse("1.0.0")}))["a"] == "1.1.0"
    )


def test_optional_dependencies() -> None:
    plan = resolve(
        [
            m("a", "1.0.0", optional={"present": "^1", "absent": "*", "old": "^2"}),
            m("present", "1.2.0"),
            m("old", "1.0.0"),
        ],
        host_version=HOST,
    )
    assert plan.edges["a"] == frozenset({"present"})
    assert plan.notes["a"] == [
        "optional dependency 'absent' (*) skipped: not installed",
        "optional dependency 'old' (^2) skipped: no compatible version (found 1.0.0)",
    ]


def test_services_pick_a_provider_in_range() -> None:
    plan = resolve(
        [
            m("fmt", "1.0.0", provides={"formatting": "1.0.0"}),
            m("fmt", "2.0.0", provides={"formatting": "2.1.0"}),
            m("user", "1.0.0", requires={"formatting": "^1"}),
        ],
        host_version=HOST,
    )
    assert chosen(plan) == {"fmt": "1.0.0", "user": "1.0.0"}
    assert plan.edges["user"] == frozenset({"fmt"})


def test_cycles_fail_with_their_path_and_bystanders_load() -> None:
    plan = resolve(
        [
            m("a", "1.0.0", {"b": "*"}),
            m("b", "1.0.0", {"c": "*"}),
            m("c", "1.0.0", {"a": "*"}),
            m("d", "1.0.0", {"a": "*"}),
            m("e"),
        ],
        host_version=HOST,
    )
    for pid in ("a", "b", "c"):
        err = plan.failures[pid]
        assert isinstance(err, DependencyCycleError)
        assert err.message == "cannot be loaded: dependency cycle a → b → c → a"
        assert err.details["cycle"] == ["a", "b", "c", "a"]
    assert plan.failures["d"].message == (
        "cannot be loaded: it needs a plugin on the dependency cycle a → b → c → a"
    )
    assert plan.order == ["e"]


def test_a_failed_dependency_is_named_by_its_dependents() -> None:
    plan = resolve(
        [m("base", "1.0.0", {"ghost": "*"}), m("top", "1.0.0", {"base": "*"}), m("ok")],
        host_version=HOST,
    )
    assert plan.failures["top"].message.startswith(
        "cannot be loaded: it needs 'base', which cannot be loaded:"
    )
    assert plan.order == ["ok"]


def test_disabled_plugins_are_not_chosen() -> None:
    plan = resolve([m("a", "1.0.0", {"b": "*"}), m("b")], host_version=HOST, disabled={"b"})
    assert "'b' is disabled" in str(plan.failures["a"])
    assert "plugbay enable b" in str(plan.failures["a"])


def test_backtracking_through_a_cycle_terminates() -> None:
    # resolvelib's Resolver.resolve recursed without end on this universe while building
    # its result graph (found by the property test below); plugbay drives Resolution
    # itself and walks the pins iteratively.
    plan = resolve(
        [
            m("p0", "1.1.0", {"p5": "^2"}),
            m("p4", "2.0.0", {"p5": "^1"}),
            m("p4", "1.1.0", {"p5": "~1.1"}),
            m("p3", "1.1.0", {"p4": "<2"}),
            m("p3", "2.0.0", {"p4": "^1", "p5": "*"}),
            m("p5", "1.1.0", {"p3": "~1.1", "p4": ">=1,<3"}),
        ],
        host_version=HOST,
    )
    assert "p0" in plan.failures
    assert set(plan.failures) | set(plan.selected) == {"p0", "p3", "p4", "p5"}


# ------------------------------------------------------------------ registry


def test_registry_keeps_every_version_and_refuses_duplicates() -> None:
    reg = PluginRegistry(HOST)
    reg.register(m("a", "1.0.0"))
    reg.register(m("a", "1.2.0"))
    assert reg.versions("a") == [Version.parse("1.2.0"), Version.parse("1.0.0")]
    assert str(reg.get("a").version) == "1.2.0"
    assert str(reg.resolve(PluginDependency("a", "~1.0")).version) == "1.0.0"
    assert str(reg.resolve("a", "^1").version) == "1.2.0"
    with pytest.raises(DuplicatePluginError, match=r"'a' 1\.0\.0 is provided twice"):
        reg.register(m("a", "1.0.0"))
    with pytest.raises(ResolutionError, match="no registered version of 'a' satisfies \\^2"):
        reg.resolve("a", "^2")
    with pytest.raises(PluginNotFound) as err:
        reg.versions("b")
    assert err.value.message == "no plugin 'b' is known to this host"
    assert err.value.hint == LIST_THE_PLUGINS
    reg.register(m("alpha"))
    with pytest.raises(PluginNotFound, match="did you mean 'alpha'"):
        reg.get("alpah")
    reg.unregister("a", Version.parse("1.2.0"))
    assert reg.versions("a") == [Version.parse("1.0.0")]
    reg.unregister("a")
    assert "a" not in reg and len(reg) == 1


def test_registry_graph_and_dependents() -> None:
    reg = PluginRegistry(HOST)
    for manifest in (m("a"), m("b", "1.0.0", {"a": "^1"}), m("c", "1.0.0", optional={"a": "*"})):
        reg.register(manifest)
    assert reg.dependency_graph() == {"a": {}, "b": {"a": "^1"}, "c": {}}
    assert reg.dependencies == reg.dependency_graph()
    assert list(reg.plugins) == ["a", "b", "c"]
    assert reg.dependents_of("a") == ["b", "c"]
    assert reg.resolve_all().order == ["a", "b", "c"]


# ------------------------------------------------------------------ properties

ids = [f"p{i}" for i in range(6)]
ranges = st.sampled_from(["*", "^1", "^2", "~1.1", ">=1.1", "<2", "1.x || 3.x", ">=1,<3", "^9"])


@st.composite
def universes(draw: st.DrawFn) -> list[PluginManifest]:
    out = []
    for pid in draw(st.lists(st.sampled_from(ids), min_size=1, max_size=6, unique=True)):
        for version in draw(
            st.lists(
                st.sampled_from(["1.0.0", "1.1.0", "2.0.0"]), min_size=1, max_size=3, unique=True
            )
        ):
            deps = draw(st.dictionaries(st.sampled_from(ids), ranges, max_size=3))
            deps.pop(pid, None)
            host = draw(st.sampled_from(["*", "*", ">=1"]))
            out.append(m(pid, version, deps, host=host))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(universes())
def test_a_plan_satisfies_every_constraint_or_explains(manifests: list[PluginManifest]) -> None:
    plan = resolve(manifests, host_version=HOST)
    known = {x.id for x in manifests}
    for pid, man in plan.selected.items():
        assert man.host.contains(HOST, include_prerelease=True)
        for dep, rng in man.dependencies.items():
            assert dep in plan.selected, (pid, dep)
            assert rng.contains(plan.selected[dep].version)
    position = {p: i for i, p in enumerate(plan.order)}
    assert set(position) == set(plan.selected)
    for pid, needs in plan.edges.items():
        for dep in needs:
            assert position[dep] < position[pid]
    assert set(plan.selected) | set(plan.failures) == known
    for pid, error in plan.failures.items():
        assert isinstance(error, PlugbayError)
        assert error.plugin == pid
        assert any(f"'{k}'" in str(error) or f" {k} " in str(error) for k in known)


def test_a_root_that_only_an_older_version_satisfies_is_not_failed() -> None:
    # Found by the property above: p5 2.0.0 needs p0, whose only host-compatible version
    # needs p4, which needs p5 ~1.1. resolvelib gave up on p5 as a root instead of trying
    # p5 1.0.0, and p3 (which needs p5 ^1) was then selected without it.
    universe = [
        m("p1", "1.0.0", {}),
        m("p5", "1.0.0", {}),
        m("p5", "2.0.0", {"p0": "*"}),
        m("p0", "1.0.0", {"p4": "*"}),
        m("p0", "1.1.0", {}, host=">=1"),
        m("p2", "1.0.0", {}),
        m("p3", "1.0.0", {"p5": "^1"}),
        m("p3", "1.1.0", {"p0": "*"}),
        m("p4", "1.0.0", {"p5": "~1.1"}),
    ]
    plan = resolve(universe, host_version=HOST)
    assert {k: str(v.version) for k, v in plan.selected.items()} == {
        "p1": "1.0.0", "p2": "1.0.0", "p3": "1.0.0", "p5": "1.0.0",
    }  # fmt: skip
    assert set(plan.failures) == {"p0", "p4"}
    assert "'p4' 1.0.0 requires 'p5' ~1.1" in str(plan.failures["p4"])
