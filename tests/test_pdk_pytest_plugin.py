"""The pytest plugin (entry point ``pytest11``), run by pytester as a plugin author runs it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from plugbay.pdk.testing import PluginHost
from tests.conftest import PluginFactory

pytest_plugins = ["pytester"]

PLUGIN = """
from plugbay import PluginContext, SystemEvent, SystemPlugin, command


class P(SystemPlugin):
    async def initialize(self, context: PluginContext) -> None:
        self.heard: list[str] = []
        context.logger.info("hello from %s", context.environment.isolation)
        context.metrics.gauge("ready", 1.0)

    async def on_system_event(self, event: SystemEvent) -> None:
        self.heard.append(event.kind)
        self.context.metrics.increment("heard", kind=event.kind)

    @command
    def heard_kinds(self) -> list[str]:
        return self.heard

    @command
    def where(self) -> str:
        return self.context.environment.isolation

    @command
    def fail(self) -> None:
        raise ValueError("no")
"""


@pytest.fixture
def plugin_dir(pytester: pytest.Pytester) -> Path:
    d = pytester.path / "acme-probe"
    d.mkdir()
    (d / "plugin.toml").write_text(
        'id = "acme.probe"\nversion = "1.0.0"\ntype = "system"\nentry = "probe:P"\n'
        '[config.level]\ntype = "string"\ndefault = "info"\n'
    )
    (d / "probe.py").write_text(PLUGIN)
    return d


def test_fixtures_drive_a_real_host_under_both_backends(
    pytester: pytest.Pytester, plugin_dir: Path
) -> None:
    pytester.makepyfile(
        test_probe=textwrap.dedent(
            f"""
            import pytest
            from plugbay import PluginCallError, ConfigError

            PLUGIN = {str(plugin_dir)!r}

            def test_backend(plugbay_host, plugbay_isolation):
                host = plugbay_host(PLUGIN, isolation=plugbay_isolation)
                assert host.call("acme.probe", "where") == plugbay_isolation
                with pytest.raises(PluginCallError, match="raised ValueError: no"):
                    host.call("acme.probe", "fail")
                host.assert_calls("acme.probe", "fail", 1)
                host.assert_errors("acme.probe", "fail", 1)
                host.assert_logged("acme.probe", "hello from " + plugbay_isolation)

            def test_events_metrics_and_logs(plugbay_host):
                host = plugbay_host(PLUGIN)
                host.emit("plugin.failed", plugin="x")
                host.emit("disk.full")
                assert host.call("acme.probe", "heard_kinds")[-2:] == ["plugin.failed", "disk.full"]
                host.assert_counter("acme.probe", "heard", 1, kind="disk.full")
                host.assert_gauge("acme.probe", "ready", 1.0)
                assert [l.level for l in host.logs("acme.probe")] == ["info"]

            def test_config_reaches_the_plugin_and_bad_config_fails_the_start(plugbay_host):
                with pytest.raises(Exception, match="config key 'level' is invalid"):
                    plugbay_host(PLUGIN, config={{"acme.probe": {{"level": 3}}}})
                host = plugbay_host(PLUGIN, config={{"acme.probe": {{"level": "debug"}}}}, check=False)
                assert host.state("acme.probe") == "active"

            @pytest.mark.asyncio
            async def test_async_tests_use_acall(plugbay_host):
                host = plugbay_host(PLUGIN)
                assert await host.acall("acme.probe", "where") == "inline"

            def test_failing_assertions_explain_themselves(plugbay_host):
                host = plugbay_host(PLUGIN)
                host.assert_calls("acme.probe", "where", 3)
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_backend?inline? PASSED*",
            "*test_backend?process? PASSED*",
            "*acme.probe.where: 0 call(s), expected 3*",
        ]
    )


def test_a_plugin_that_cannot_start_fails_the_fixture_with_its_reason(
    pytester: pytest.Pytester,
) -> None:
    d = pytester.path / "broken"
    d.mkdir()
    (d / "plugin.toml").write_text(
        'id = "acme.broken"\nversion = "1.0.0"\ntype = "utility"\nentry = "b:P"\n'
    )
    (d / "b.py").write_text(
        "from plugbay import UtilityPlugin\n\nclass P(UtilityPlugin):\n"
        "    async def initialize(self, context):\n        raise RuntimeError('cannot start')\n"
    )
    pytester.makepyfile(
        test_broken=f"""
        def test_it(plugbay_host):
            plugbay_host({str(d)!r})

        def test_expected(plugbay_host):
            host = plugbay_host({str(d)!r}, check=False)
            assert host.state("acme.broken") == "failed"
            assert "cannot start" in host.reason("acme.broken")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*not every plugin started: acme.broken is failed*cannot start*"])


def test_plugin_host_without_pytest(plugins: PluginFactory) -> None:
    """The harness is usable directly (a context manager), and cleans up after itself."""
    d = plugins("acme.plain")
    with PluginHost([d], isolation="process") as host:
        assert host.call("acme.plain", "ping") == "pong from acme.plain 1.0.0"
        state_dir = host.state_dir
        assert state_dir.is_dir()
    assert not state_dir.exists()
    with pytest.raises(Exception, match="'thread' is not an isolation backend"):
        PluginHost([d], isolation="thread")  # type: ignore[arg-type]


def test_a_generated_plugins_inline_test_says_how_its_author_installs_a_requirement(
    tmp_path: Path,
) -> None:
    """An author adds a library to the generated package's dependencies and runs its
    tests as the README says (``pytest`` in its directory): the inline cases run in
    pytest's own Python, so the failure says to install the requirements there or to test
    in a worker, not an operator's ``[policy] inline``."""
    import subprocess
    import sys

    from plugbay.pdk import create_plugin

    package = create_plugin("utility", "acme.needy", tmp_path / "acme-needy")
    pyproject = package / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'dependencies = ["plugbay>=0.1,<1"]',
            'dependencies = ["plugbay>=0.1,<1", "plugbay-absent-lib>=1"]',
        )
    )
    shown = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "greet and inline"],
        cwd=package,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert shown.returncode == 1, shown.stdout
    said = shown.stdout.replace("\n", " ")
    assert "requires plugbay-absent-lib>=1" in said
    assert "runs inline, in the Python that runs the tests" in said
    assert f"pip install -e '.[test]' in {package}; or test it with isolation='process'" in said
    assert "isolation='process'" in said
    assert "[policy]" not in said
