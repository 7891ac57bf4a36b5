"""What the code imports and calls against the permissions the manifest asks for."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Final

from plugbay.pdk._analysis.base import _Context, _dotted, _Module

# what needs which permission: modules imported, and calls made
_NETWORK_MODULES: Final = frozenset(
    {
        "socket", "ssl", "http.client", "http.server", "urllib.request", "ftplib", "smtplib",
        "poplib", "imaplib", "telnetlib", "xmlrpc.client", "socketserver", "requests", "httpx",
        "aiohttp", "urllib3", "websockets", "grpc", "paramiko",
    }
)  # fmt: skip
_NETWORK_CALLS: Final = frozenset(
    {
        "asyncio.open_connection", "asyncio.start_server", "asyncio.open_unix_connection",
        "asyncio.start_unix_server", "create_connection", "create_server",
        "create_datagram_endpoint", "sock_connect",
    }
)  # fmt: skip
_SUBPROCESS_MODULES: Final = frozenset({"subprocess", "multiprocessing", "pty", "pexpect", "sh"})
_SUBPROCESS_CALLS: Final = frozenset(
    {
        "os.system", "os.popen", "os.fork", "os.forkpty", "os.execv", "os.execve", "os.execvp",
        "os.execvpe", "os.execl", "os.execle", "os.execlp", "os.execlpe", "os.spawnl",
        "os.spawnv", "os.spawnve", "os.spawnvp", "os.posix_spawn", "os.posix_spawnp",
        "asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell",
        "subprocess_exec", "subprocess_shell",
    }
)  # fmt: skip


# what the code does that needs a permission: (node, permission, what it does)
_Use = tuple[ast.stmt | ast.expr, str, str]


def _uses(module: _Module) -> Iterator[_Use]:
    """(node, permission needed, what the code does) for each import or call that needs one."""
    for node in module.nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield from _import_uses(module, node)
        elif isinstance(node, ast.Call):
            use = _call_use(module, node)
            if use is not None:
                yield use
        elif isinstance(node, ast.Subscript) and _resolve_call(module, node.value) == "os.environ":
            key = node.slice
            name = key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else ""
            yield node, f"env:{name}", f"reads os.environ[{name!r}]" if name else "reads os.environ"


def _import_uses(module: _Module, node: ast.Import | ast.ImportFrom) -> Iterator[_Use]:
    names = (
        [a.name for a in node.names]
        if isinstance(node, ast.Import)
        else ([module.absolute(node.module, node.level)] if node.level == 0 else [])
    )
    for name in names:
        if _matches(name, _NETWORK_MODULES):
            yield node, "network", f"imports {name}"
        elif _matches(name, _SUBPROCESS_MODULES):
            yield node, "subprocess", f"imports {name}"


def _call_use(module: _Module, node: ast.Call) -> _Use | None:
    dotted = _resolve_call(module, node.func)
    short = dotted.rsplit(".", 1)[-1]
    if dotted in _NETWORK_CALLS or (short in _NETWORK_CALLS and "." in dotted):
        return node, "network", f"calls {dotted}()"
    if dotted in _SUBPROCESS_CALLS or (
        short in _SUBPROCESS_CALLS and short.startswith("subprocess_")
    ):
        return node, "subprocess", f"calls {dotted}()"
    if dotted in ("os.getenv", "os.environ.get", "os.putenv"):
        name = (
            node.args[0].value
            if node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            else ""
        )
        return node, f"env:{name}", f"calls {dotted}({name!r})" if name else f"calls {dotted}()"
    return None


def _matches(name: str, modules: frozenset[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def _resolve_call(module: _Module, func: ast.expr) -> str:
    """``sp.run`` → ``subprocess.run`` when ``import subprocess as sp``; ``Popen`` likewise."""
    dotted = _dotted(func)
    if not dotted:
        return ""
    head, _, rest = dotted.partition(".")
    imported = module.imports.get(head)
    if imported is None:
        return dotted
    source, attr = imported
    full = f"{source}.{attr}" if attr else source
    return f"{full}.{rest}" if rest else full


class _PermissionChecks(_Context):
    """Imports and calls that need a permission the manifest does not ask for."""

    def _check_permissions(self) -> None:
        seen: set[str] = set()
        for module in self.modules.values():
            for node, need, what in _uses(module):
                seen.add(need.partition(":")[0])
                self._check_use(module, node, need, what)
        self._check_unused_permissions(seen)
        self._check_network_ports()

    def _check_use(self, module: _Module, node: ast.stmt | ast.expr, need: str, what: str) -> None:
        """Warn when the manifest does not ask for the permission this use needs."""
        perms = self.m.permissions
        if need == "network" and not perms.network:
            self.add(
                "warning",
                "permission",
                f"{what} but the manifest asks for no network permission",
                (module.path, node.lineno),
                'add network = ["HOST:PORT"] under [permissions] (the operator grants it); '
                "in a sandbox, connections are refused without it",
            )
        elif need == "subprocess" and not perms.subprocess:
            self.add(
                "warning",
                "permission",
                f"{what} but the manifest does not ask for subprocess",
                (module.path, node.lineno),
                "add subprocess = true under [permissions] (the operator grants it); "
                "in a sandbox, starting a process fails without it",
            )
        elif need.startswith("env"):
            name = need.partition(":")[2]
            if (name and name not in perms.env) or (not name and not perms.env):
                self.add(
                    "warning",
                    "permission",
                    f"{what} but the manifest does not ask for "
                    + (f"env:{name}" if name else "any environment variable"),
                    (module.path, node.lineno),
                    f'add env = ["{name or "NAME"}"] under [permissions]; a sandboxed '
                    "plugin sees only granted variables",
                )

    def _check_network_ports(self) -> None:
        """A network entry without a port, or naming a host: a sandbox cannot allow it
        (see ``isolation.network_grants``), and loading the plugin sandboxed refuses it."""
        from plugbay.isolation.network_grants import network_refusal

        for entry in self.m.permissions.network:
            refusal = network_refusal(entry)
            if refusal is not None:
                message, hint = refusal
                # a plugin that by design runs only trusted (it asks for inline): told, not warned
                inline = self.m.isolation == "inline"
                asks = "; its manifest asks to run inline, where nothing confines it"
                self.add(
                    "info" if inline else "warning",
                    "permission",
                    f"{message}; sandboxed (any plugin the host does not trust), it is "
                    f"refused when loaded{asks if inline else ''}",
                    self.in_manifest("network"),
                    hint,
                )

    def _check_unused_permissions(self, seen: set[str]) -> None:
        """Least privilege: what it asks for but, as far as its code shows, never uses."""
        perms = self.m.permissions
        for asked, used, key in (
            (bool(perms.network), "network" in seen, "network"),
            (perms.subprocess, "subprocess" in seen, "subprocess"),
        ):
            if asked and not used:
                self.add(
                    "info",
                    "permission",
                    f"asks for {key} but no import or call in its code needs it",
                    self.in_manifest(key),
                    f"drop {key} from [permissions] unless a library it uses needs it",
                )
