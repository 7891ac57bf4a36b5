"""Re-port node-semver's range fixtures into node_semver.py (a maintenance script).

    python tests/data/versions/port_node_semver.py /path/to/node-semver TAG

reads ``test/fixtures/range-include.js``, ``range-exclude.js`` and ``range-parse.js``
of a node-semver checkout with ``node`` (they are JavaScript modules), applies the
rules in node_semver.py's docstring, and rewrites its INCLUDE, EXCLUDE,
INVALID_VERSIONS and RANGE_PARSE lists and the left-out notes of those three files.
The other lists (comparisons, equality, valid versions) are left as they are.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
DATA = HERE / "node_semver.py"

DUMP = """
const root = process.argv[1]
const out = {}
for (const name of ['range-include', 'range-exclude', 'range-parse']) {
  out[name] = require(`${root}/test/fixtures/${name}.js`).map(e => e.map(x =>
    x instanceof RegExp ? { regexp: String(x) } : x === undefined ? null : x))
}
process.stdout.write(JSON.stringify(out))
"""


def options(entry: list[Any], at: int) -> tuple[bool, bool]:
    """(loose, include_prerelease) of an entry's options."""
    opt = entry[at] if len(entry) > at else None
    if opt is True:
        return True, False
    if isinstance(opt, dict) and "regexp" not in opt:
        return bool(opt.get("loose")), bool(opt.get("includePrerelease"))
    return False, False


def shown(entry: list[Any]) -> str:
    """The entry as a short line (long strings abbreviated)."""

    def short(x: Any) -> str:
        if isinstance(x, str) and len(x) > 40:
            return json.dumps(x[:24] + f"...({len(x)} chars)")
        return json.dumps(x)

    return "[" + ", ".join(short(x) for x in entry) + "]"


def port(fixtures: dict[str, list[list[Any]]]) -> dict[str, Any]:
    include: list[tuple[str, str, bool]] = []
    exclude: list[tuple[str, str, bool]] = []
    invalid: list[tuple[str, object]] = []
    parse: list[tuple[str, str | None, bool]] = []
    left: dict[str, list[str]] = {
        "range-include.js": [],
        "range-exclude.js": [],
        "range-parse.js": [],
    }
    for name, target in (("range-include", include), ("range-exclude", exclude)):
        for entry in fixtures[name]:
            text, version = entry[0], entry[1]
            loose, inc = options(entry, 2)
            if loose:
                left[f"{name}.js"].append(f"#   {shown(entry)}  -- loose mode")
            elif not isinstance(version, str) or not re.match(r"v?\d", version):
                invalid.append((text, version))
            elif version.startswith("v"):
                left[f"{name}.js"].append(f"#   {shown(entry)}  -- leading 'v': not strict SemVer")
            else:
                target.append((text, version, inc))
    for entry in fixtures["range-parse"]:
        text, expected = entry[0], entry[1]
        loose, inc = options(entry, 2)
        if loose:
            left["range-parse.js"].append(f"#   {shown(entry)}  -- loose mode")
        elif "9007199254740991" in text and expected is None:
            left["range-parse.js"].append(
                f"#   {shown(entry)}  -- a node limit (Number.MAX_SAFE_INTEGER); "
                "Python's integers are exact"
            )
        else:
            parse.append((text, expected, inc))
    return {
        "include": include,
        "exclude": exclude,
        "invalid": invalid,
        "parse": parse,
        "left": left,
    }


def block(name: str, comment: str, kind: str, rows: list[tuple[Any, ...]]) -> str:
    lines = [f"# {comment}", f"{name}: {kind} = ["]
    lines += [f"    ({', '.join(_py(x) for x in row)})," for row in rows]
    return "\n".join(lines) + "\n]\n"


def _py(x: Any) -> str:
    return json.dumps(x, ensure_ascii=False) if isinstance(x, str) else repr(x)


def rewrite(ported: dict[str, Any], tag: str) -> str:
    text = DATA.read_text()
    head, _, rest = text.partition("\nLeft out (fixture line -- reason):\n")
    head = re.sub(r"\nThe three range files are node-semver .*\n", "\n", head)
    head += f"\nThe three range files are node-semver {tag}'s, re-ported by port_node_semver.py\n"
    _, _, after_ranges = rest.partition("comparisons.js\n")
    notes = "".join(
        f"{name}\n" + "".join(f"{line}\n" for line in lines)
        for name, lines in ported["left"].items()
    )
    text = (
        head
        + "\nLeft out (fixture line -- reason):\n\n"
        + notes
        + "comparisons.js\n"
        + after_ranges
    )
    lists = (
        block("INCLUDE", "(range, version, include_prerelease): the version is in the range",
              "list[tuple[str, str, bool]]", ported["include"]),
        block("EXCLUDE", "(range, version, include_prerelease): the version is not in the range",
              "list[tuple[str, str, bool]]", ported["exclude"]),
        block("INVALID_VERSIONS", "(range, version): not versions at all; never in any range",
              "list[tuple[str, object]]", ported["invalid"]),
        block("RANGE_PARSE",
              "(range, desugared comparators or None for an invalid range, include_prerelease)",
              "list[tuple[str, str | None, bool]]", ported["parse"]),
    )  # fmt: skip
    start = text.index("# (range, version, include_prerelease): the version is in the range")
    end = text.index("# (greater, lesser)")
    return text[:start] + "\n".join(lists) + "\n" + text[end:]


def main() -> None:
    root, tag = Path(sys.argv[1]).resolve(), sys.argv[2]
    dumped = subprocess.run(
        ["node", "-e", DUMP, str(root)], capture_output=True, text=True, check=True
    ).stdout
    DATA.write_text(rewrite(port(json.loads(dumped)), tag))


if __name__ == "__main__":
    main()
