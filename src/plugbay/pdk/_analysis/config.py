"""The config keys the code reads against the schema the manifest declares."""

from __future__ import annotations

import ast

from plugbay.pdk._analysis.base import _Context, _dotted


class _ConfigChecks(_Context):
    """Config keys read in code are declared; required keys are noted."""

    def _check_config_use(self) -> None:
        if ("config",) in self.broken:
            return  # the whole [config] is a finding of its own
        schema = self.m.config.fields if self.m.config else {}
        # an entry with a problem of its own (a finding already) is declared all the same
        declared = {*schema, *(p[1] for p in self.broken if p[0] == "config" and len(p) > 1)}
        for module in self.modules.values():
            for node in module.nodes:
                key = _config_key_read(node)
                if key is not None and key not in declared:
                    self.add(
                        "error",
                        "config",
                        f"the code reads config key '{key}', which the manifest's [config] "
                        "does not declare",
                        (module.path, getattr(node, "lineno", None)),
                        f"declare [config.{key}] with a type (and a default), or fix the key; "
                        f"declared: {', '.join(schema) or 'none'}",
                    )
        for name, spec in schema.items():
            if spec.required and not spec.has_default:
                self.add(
                    "info",
                    "config",
                    f"config key '{name}' is required and has no default: the host must set it",
                    self.in_manifest(name),
                    f'document it; operators set it under [plugins."{self.m.id}"] in plugbay.toml',
                )


def _config_key_read(node: ast.AST) -> str | None:
    """The key in ``…config["key"]`` or ``…config.get("key", …)``; None for anything else."""
    if (
        isinstance(node, ast.Subscript)
        and _dotted(node.value).split(".")[-1] == "config"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    ):
        return node.slice.value
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and _dotted(node.func.value).split(".")[-1] == "config"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None
