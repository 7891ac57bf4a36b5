"""node-semver's own test fixtures, as data.

Ported from npm/node-semver (ISC License, Copyright (c) Isaac Z. Schlueter and
Contributors), ``test/fixtures/``: range-include.js, range-exclude.js,
range-parse.js, comparisons.js, equality.js and valid-versions.js, every entry in
file order, by a script that applied these rules and nothing else:

* options ``includePrerelease: true`` become ``include_prerelease=True``; options that
  leave ``loose`` falsy (``{}``, ``/asdf/``, ``{loose: null|0|undefined|NaN|false}``)
  are the default and the entry is kept as a plain one;
* entries in loose mode (the option ``true`` or ``{loose: <truthy>}``) are left out:
  plugbay reads strictly, as node-semver does by default;
* entries whose *version* is not strict SemVer 2.0.0 (a leading ``v``) are left out;
* range-exclude.js's three "invalid versions never satisfy, but shouldn't throw"
  entries are kept apart in INVALID_VERSIONS: ``x in range`` answers False for them,
  ``range.contains(x)`` raises VersionError.

The three range files are node-semver v7.8.5's, re-ported by port_node_semver.py

Left out (fixture line -- reason):

range-include.js
#   ["1.2.3pre+asdf - 2.4.3-pre+asdf", "1.2.3", true]  -- loose mode
#   ["1.2.3-pre+asdf - 2.4.3pre+asdf", "1.2.3", true]  -- loose mode
#   ["1.2.3pre+asdf - 2.4.3pre+asdf", "1.2.3", true]  -- loose mode
#   ["*", "v1.2.3", {"loose": 123}]  -- loose mode
#   [">=0.1.97", "v0.1.97", true]  -- loose mode
#   ["~ 1.0.3alpha", "1.0.12", {"loose": true}]  -- loose mode
range-exclude.js
#   ["1", "1.0.0beta", {"loose": 420}]  -- loose mode
#   ["<1", "1.0.0beta", true]  -- loose mode
#   ["< 1", "1.0.0beta", true]  -- loose mode
#   [">=0.1.97", "v0.1.93", true]  -- loose mode
#   ["1", "2.0.0beta", true]  -- loose mode
#   ["*", "v1.2.3-foo", true]  -- loose mode
#   ["== 1.0.0 || foo", "2.0.0", {"loose": true}]  -- loose mode
range-parse.js
#   [">01.02.03", ">1.2.3", true]  -- loose mode
#   ["~1.2.3beta", ">=1.2.3-beta <1.3.0-0", {"loose": true}]  -- loose mode
#   [">=09090", ">=9090.0.0", true]  -- loose mode
#   [">=09090-0", null, {"loose": true, "includePrerelease": true}]  -- loose mode
#   ["^9007199254740991.0.0", null]  -- a node limit (Number.MAX_SAFE_INTEGER); Python's integers are exact
#   ["4.17.0+aaaaaaaaaaaaaaaaa...(258 chars)", "4.17.0", {"loose": true}]  -- loose mode
#   ["4.17.0+aaaaaaaaaaaaaaaaa...(258 chars)", "4.17.0", {"loose": true}]  -- loose mode
#   ["1.2.3+aaaaaaaaaaaaaaaaaa...(265 chars)", ">=1.2.3 <=2.0.0", {"loose": true}]  -- loose mode
#   [">= 1.2.3+aaaaaaaaaaaaaaa...(260 chars)", ">=1.2.3", {"loose": true}]  -- loose mode
#   ["1.2.3+sha512.aaaaaaaaaaa...(264 chars)", "1.2.3", {"loose": true}]  -- loose mode
#   ["1.2.3+sha256.aaaaaaaaaaa...(414 chars)", "1.2.3", {"loose": true}]  -- loose mode
#   ["1.2.3+aaaaaaaaaaaaaaaaaa...(518 chars)", "1.2.3||2.0.0", {"loose": true}]  -- loose mode
comparisons.js
#   ['v0.0.0', '0.0.0-foo', true]  -- loose mode
#   ['v0.0.1', '0.0.0', { loose: true }]  -- loose mode
#   ['v1.0.0', '0.9.9', true]  -- loose mode
#   ['v0.10.0', '0.9.0', true]  -- loose mode
#   ['v0.99.0', '0.10.0', true]  -- loose mode
#   ['v2.0.0', '1.2.3', true]  -- loose mode
#   ['0.0.0', 'v0.0.0-foo', true]  -- loose mode
#   ['0.0.1', 'v0.0.0', true]  -- loose mode
#   ['1.0.0', 'v0.9.9', true]  -- loose mode
#   ['0.10.0', 'v0.9.0', true]  -- loose mode
#   ['0.99.0', 'v0.10.0', true]  -- loose mode
#   ['2.0.0', 'v1.2.3', true]  -- loose mode
equality.js (it is mostly a test of loose parsing)
#   ['1.2.3', 'v1.2.3', true]  -- loose mode
#   ['1.2.3', '=1.2.3', true]  -- loose mode
#   ['1.2.3', 'v 1.2.3', true]  -- loose mode
#   ['1.2.3', '= 1.2.3', true]  -- loose mode
#   ['1.2.3', ' v1.2.3', true]  -- loose mode
#   ['1.2.3', ' =1.2.3', true]  -- loose mode
#   ['1.2.3', ' v 1.2.3', true]  -- loose mode
#   ['1.2.3', ' = 1.2.3', true]  -- loose mode
#   ['1.2.3-0', 'v1.2.3-0', true]  -- loose mode
#   ['1.2.3-0', '=1.2.3-0', true]  -- loose mode
#   ['1.2.3-0', 'v 1.2.3-0', true]  -- loose mode
#   ['1.2.3-0', '= 1.2.3-0', true]  -- loose mode
#   ['1.2.3-0', ' v1.2.3-0', true]  -- loose mode
#   ['1.2.3-0', ' =1.2.3-0', true]  -- loose mode
#   ['1.2.3-0', ' v 1.2.3-0', true]  -- loose mode
#   ['1.2.3-0', ' = 1.2.3-0', true]  -- loose mode
#   ['1.2.3-1', 'v1.2.3-1', true]  -- loose mode
#   ['1.2.3-1', '=1.2.3-1', true]  -- loose mode
#   ['1.2.3-1', 'v 1.2.3-1', true]  -- loose mode
#   ['1.2.3-1', '= 1.2.3-1', true]  -- loose mode
#   ['1.2.3-1', ' v1.2.3-1', true]  -- loose mode
#   ['1.2.3-1', ' =1.2.3-1', true]  -- loose mode
#   ['1.2.3-1', ' v 1.2.3-1', true]  -- loose mode
#   ['1.2.3-1', ' = 1.2.3-1', true]  -- loose mode
#   ['1.2.3-beta', 'v1.2.3-beta', true]  -- loose mode
#   ['1.2.3-beta', '=1.2.3-beta', true]  -- loose mode
#   ['1.2.3-beta', 'v 1.2.3-beta', true]  -- loose mode
#   ['1.2.3-beta', '= 1.2.3-beta', true]  -- loose mode
#   ['1.2.3-beta', ' v1.2.3-beta', true]  -- loose mode
#   ['1.2.3-beta', ' =1.2.3-beta', true]  -- loose mode
#   ['1.2.3-beta', ' v 1.2.3-beta', true]  -- loose mode
#   ['1.2.3-beta', ' = 1.2.3-beta', true]  -- loose mode
#   ['1.2.3-beta+build', ' = 1.2.3-beta+otherbuild', true]  -- loose mode
#   ['1.2.3+build', ' = 1.2.3+otherbuild', true]  -- loose mode
#   ['  v1.2.3+build', '1.2.3+otherbuild']  -- version is not strict SemVer 2.0.0 (leading 'v' and spaces)
valid-versions.js
#   ['v1.2.3', 1, 2, 3, [], []]  -- not strict SemVer 2.0.0 (leading 'v')

invalid-versions.js is not ported as data: its entries are node-specific limits
(MAX_LENGTH 256, Number.MAX_SAFE_INTEGER), which Python's exact integers and SemVer
2.0.0 do not have, JavaScript objects (a RegExp, an object with toString), and
'hello, world', which test_versions.py checks directly.
"""

# (range, version, include_prerelease): the version is in the range
INCLUDE: list[tuple[str, str, bool]] = [
    ("1.0.0 - 2.0.0", "1.2.3", False),
    ("^1.2.3+build", "1.2.3", False),
    ("^1.2.3+build", "1.3.0", False),
    ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3", False),
    ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3-pre.2", False),
    ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "2.4.3-alpha", False),
    ("1.2.3+asdf - 2.4.3+asdf", "1.2.3", False),
    ("1.0.0", "1.0.0", False),
    (">=*", "0.2.4", False),
    ("", "1.0.0", False),
    ("*", "1.2.3", False),
    (">=1.0.0", "1.0.0", False),
    (">=1.0.0", "1.0.1", False),
    (">=1.0.0", "1.1.0", False),
    (">1.0.0", "1.0.1", False),
    (">1.0.0", "1.1.0", False),
    ("<=2.0.0", "2.0.0", False),
    ("<=2.0.0", "1.9999.9999", False),
    ("<=2.0.0", "0.2.9", False),
    ("<2.0.0", "1.9999.9999", False),
    ("<2.0.0", "0.2.9", False),
    (">= 1.0.0", "1.0.0", False),
    (">=  1.0.0", "1.0.1", False),
    (">=   1.0.0", "1.1.0", False),
    ("> 1.0.0", "1.0.1", False),
    (">  1.0.0", "1.1.0", False),
    ("<=   2.0.0", "2.0.0", False),
    ("<= 2.0.0", "1.9999.9999", False),
    ("<=  2.0.0", "0.2.9", False),
    ("<    2.0.0", "1.9999.9999", False),
    ("<\t2.0.0", "0.2.9", False),
    (">=0.1.97", "0.1.97", False),
    ("0.1.20 || 1.2.4", "1.2.4", False),
    (">=0.2.3 || <0.0.1", "0.0.0", False),
    (">=0.2.3 || <0.0.1", "0.2.3", False),
    (">=0.2.3 || <0.0.1", "0.2.4", False),
    ("||", "1.3.4", False),
    ("2.x.x", "2.1.3", False),
    ("1.2.x", "1.2.3", False),
    ("1.2.x || 2.x", "2.1.3", False),
    ("1.2.x || 2.x", "1.2.3", False),
    ("x", "1.2.3", False),
    ("2.*.*", "2.1.3", False),
    ("1.2.*", "1.2.3", False),
    ("1.2.* || 2.*", "2.1.3", False),
    ("1.2.* || 2.*", "1.2.3", False),
    ("*", "1.2.3", False),
    ("2", "2.1.2", False),
    ("2.3", "2.3.1", False),
    ("~0.0.1", "0.0.1", False),
    ("~0.0.1", "0.0.2", False),
    ("~x", "0.0.9", False),
    ("~2", "2.0.9", False),
    ("~2.4", "2.4.0", False),
    ("~2.4", "2.4.5", False),
    ("~>3.2.1", "3.2.2", False),
    ("~1", "1.2.3", False),
    ("~>1", "1.2.3", False),
    ("~> 1", "1.2.3", False),
    ("~1.0", "1.0.2", False),
    ("~ 1.0", "1.0.2", False),
    ("~ 1.0.3", "1.0.12", False),
    (">=1", "1.0.0", False),
    (">= 1", "1.0.0", False),
    ("<1.2", "1.1.1", False),
    ("< 1.2", "1.1.1", False),
    ("~v0.5.4-pre", "0.5.5", False),
    ("~v0.5.4-pre", "0.5.4", False),
    ("=0.7.x", "0.7.2", False),
    ("<=0.7.x", "0.7.2", False),
    (">=0.7.x", "0.7.2", False),
    ("<=0.7.x", "0.6.2", False),
    ("~1.2.1 >=1.2.3", "1.2.3", False),
    ("~1.2.1 =1.2.3", "1.2.3", False),
    ("~1.2.1 1.2.3", "1.2.3", False),
    ("~1.2.1 >=1.2.3 1.2.3", "1.2.3", False),
    ("~1.2.1 1.2.3 >=1.2.3", "1.2.3", False),
    (">=1.2.1 1.2.3", "1.2.3", False),
    ("1.2.3 >=1.2.1", "1.2.3", False),
    (">=1.2.3 >=1.2.1", "1.2.3", False),
    (">=1.2.1 >=1.2.3", "1.2.3", False),
    (">=1.2", "1.2.8", False),
    ("^1.2.3", "1.8.1", False),
    ("^0.1.2", "0.1.2", False),
    ("^0.1", "0.1.2", False),
    ("^0.0.1", "0.0.1", False),
    ("^1.2", "1.4.2", False),
    ("^1.2 ^1", "1.4.2", False),
    ("^1.2.3-alpha", "1.2.3-pre", False),
    ("^1.2.0-alpha", "1.2.0-pre", False),
    ("^0.0.1-alpha", "0.0.1-beta", False),
    ("^0.0.1-alpha", "0.0.1", False),
    ("^0.1.1-alpha", "0.1.1-beta", False),
    ("^x", "1.2.3", False),
    ("x - 1.0.0", "0.9.7", False),
    ("x - 1.x", "0.9.7", False),
    ("1.0.0 - x", "1.9.7", False),
    ("1.x - x", "1.9.7", False),
    ("<=7.x", "7.9.9", False),
    ("2.x", "2.0.0-pre.0", True),
    ("2.x", "2.1.0-pre.0", True),
    ("1.1.x", "1.1.0-a", True),
    ("1.1.x", "1.1.1-a", True),
    ("~1.1", "1.1.0-a", True),
    ("~1.1.x", "1.1.0-a", True),
    ("~1.1", "1.1.1-a", True),
    ("~2", "2.0.0-pre.0", True),
    ("~2.x", "2.0.0-pre.0", True),
    ("*", "1.0.0-rc1", True),
    ("^1.0.0-0", "1.0.1-rc1", True),
    ("^1.0.0-rc2", "1.0.1-rc1", True),
    ("^1.0.0", "1.0.1-rc1", True),
    ("^1.0.0", "1.1.0-rc1", True),
    ("1 - 2", "2.0.0-pre", True),
    ("1 - 2", "1.0.0-pre", True),
    ("1.0 - 2", "1.0.0-pre", True),
    ("=0.7.x", "0.7.0-asdf", True),
    (">=0.7.x", "0.7.0-asdf", True),
    ("<=0.7.x", "0.7.0-asdf", True),
    (">=1.0.0 <=1.1.0", "1.1.0-pre", True),
]

# (range, version, include_prerelease): the version is not in the range
EXCLUDE: list[tuple[str, str, bool]] = [
    ("1.0.0 - 2.0.0", "2.2.3", False),
    ("1.2.3+asdf - 2.4.3+asdf", "1.2.3-pre.2", False),
    ("1.2.3+asdf - 2.4.3+asdf", "2.4.3-alpha", False),
    ("^1.2.3+build", "2.0.0", False),
    ("^1.2.3+build", "1.2.0", False),
    ("^1.2.3", "1.2.3-pre", False),
    ("^1.2", "1.2.0-pre", False),
    (">1.2", "1.3.0-beta", False),
    ("<=1.2.3", "1.2.3-beta", False),
    ("^1.2.3", "1.2.3-beta", False),
    ("=0.7.x", "0.7.0-asdf", False),
    (">=0.7.x", "0.7.0-asdf", False),
    ("<=0.7.x", "0.7.0-asdf", False),
    ("1.0.0", "1.0.1", False),
    (">=1.0.0", "0.0.0", False),
    (">=1.0.0", "0.0.1", False),
    (">=1.0.0", "0.1.0", False),
    (">1.0.0", "0.0.1", False),
    (">1.0.0", "0.1.0", False),
    ("<=2.0.0", "3.0.0", False),
    ("<=2.0.0", "2.9999.9999", False),
    ("<=2.0.0", "2.2.9", False),
    ("<2.0.0", "2.9999.9999", False),
    ("<2.0.0", "2.2.9", False),
    (">=0.1.97", "0.1.93", False),
    ("0.1.20 || 1.2.4", "1.2.3", False),
    (">=0.2.3 || <0.0.1", "0.0.3", False),
    (">=0.2.3 || <0.0.1", "0.2.2", False),
    ("2.x.x", "1.1.3", False),
    ("2.x.x", "3.1.3", False),
    ("1.2.x", "1.3.3", False),
    ("1.2.x || 2.x", "3.1.3", False),
    ("1.2.x || 2.x", "1.1.3", False),
    ("2.*.*", "1.1.3", False),
    ("2.*.*", "3.1.3", False),
    ("1.2.*", "1.3.3", False),
    ("1.2.* || 2.*", "3.1.3", False),
    ("1.2.* || 2.*", "1.1.3", False),
    ("2", "1.1.2", False),
    ("2.3", "2.4.1", False),
    ("~0.0.1", "0.1.0-alpha", False),
    ("~0.0.1", "0.1.0", False),
    ("~2.4", "2.5.0", False),
    ("~2.4", "2.3.9", False),
    ("~>3.2.1", "3.3.2", False),
    ("~>3.2.1", "3.2.0", False),
    ("~1", "0.2.3", False),
    ("~>1", "2.2.3", False),
    ("~1.0", "1.1.0", False),
    ("<1", "1.0.0", False),
    (">=1.2", "1.1.1", False),
    ("~v0.5.4-beta", "0.5.4-alpha", False),
    ("=0.7.x", "0.8.2", False),
    (">=0.7.x", "0.6.2", False),
    ("<0.7.x", "0.7.2", False),
    ("<1.2.3", "1.2.3-beta", False),
    ("=1.2.3", "1.2.3-beta", False),
    (">1.2", "1.2.8", False),
    ("^0.0.1", "0.0.2-alpha", False),
    ("^0.0.1", "0.0.2", False),
    ("^1.2.3", "2.0.0-alpha", False),
    ("^1.2.3", "1.2.2", False),
    ("^1.2", "1.1.9", False),
    ("2.x", "3.0.0-pre.0", True),
    ("^0.0.3", "0.0.3-alpha", True),
    ("^0.2.3", "0.2.3-alpha", True),
    ("^1.0.0", "1.0.0-rc1", True),
    ("^1.0.0", "2.0.0-rc1", True),
    ("^1.2.3-rc2", "2.0.0", True),
    ("^1.0.0", "2.0.0-rc1", False),
    ("1 - 2", "3.0.0-pre", True),
    ("1 - 2", "2.0.0-pre", False),
    ("1 - 2", "1.0.0-pre", False),
    ("1.0 - 2", "1.0.0-pre", False),
    ("1.1.x", "1.0.0-a", False),
    ("1.1.x", "1.1.0-a", False),
    ("1.1.x", "1.2.0-a", False),
    ("1.1.x", "1.2.0-a", True),
    ("1.1.x", "1.0.0-a", True),
    ("1.x", "1.0.0-a", False),
    ("1.x", "1.1.0-a", False),
    ("1.x", "1.2.0-a", False),
    ("1.x", "0.0.0-a", True),
    ("1.x", "2.0.0-a", True),
    (">=1.0.0 <1.1.0", "1.1.0", False),
    (">=1.0.0 <1.1.0", "1.1.0", True),
    (">=1.0.0 <1.1.0", "1.1.0-pre", False),
    (">=1.0.0 <1.1.0-pre", "1.1.0-pre", False),
]

# (range, version): not versions at all; never in any range
INVALID_VERSIONS: list[tuple[str, object]] = [
    ("*", "not a version"),
    (">=2", "glorp"),
    (">=2", False),
]

# (range, desugared comparators or None for an invalid range, include_prerelease)
RANGE_PARSE: list[tuple[str, str | None, bool]] = [
    ("1.0.0 - 2.0.0", ">=1.0.0 <=2.0.0", False),
    ("1.0.0 - 2.0.0", ">=1.0.0-0 <2.0.1-0", True),
    ("1 - 2", ">=1.0.0 <3.0.0-0", False),
    ("1 - 2", ">=1.0.0-0 <3.0.0-0", True),
    ("1.0 - 2.0", ">=1.0.0 <2.1.0-0", False),
    ("1.0 - 2.0", ">=1.0.0-0 <2.1.0-0", True),
    ("1.0.0", "1.0.0", False),
    (">=*", "*", False),
    ("", "*", False),
    ("*", "*", False),
    (">=1.0.0", ">=1.0.0", False),
    (">1.0.0", ">1.0.0", False),
    ("<=2.0.0", "<=2.0.0", False),
    ("1", ">=1.0.0 <2.0.0-0", False),
    ("<2.0.0", "<2.0.0", False),
    (">= 1.0.0", ">=1.0.0", False),
    (">=  1.0.0", ">=1.0.0", False),
    (">=   1.0.0", ">=1.0.0", False),
    ("> 1.0.0", ">1.0.0", False),
    (">  1.0.0", ">1.0.0", False),
    ("<=   2.0.0", "<=2.0.0", False),
    ("<= 2.0.0", "<=2.0.0", False),
    ("<=  2.0.0", "<=2.0.0", False),
    ("<    2.0.0", "<2.0.0", False),
    ("<\t2.0.0", "<2.0.0", False),
    (">=0.1.97", ">=0.1.97", False),
    ("0.1.20 || 1.2.4", "0.1.20||1.2.4", False),
    (">=0.2.3 || <0.0.1", ">=0.2.3||<0.0.1", False),
    ("||", "*", False),
    ("2.x.x", ">=2.0.0 <3.0.0-0", False),
    ("1.2.x", ">=1.2.0 <1.3.0-0", False),
    ("1.2.x || 2.x", ">=1.2.0 <1.3.0-0||>=2.0.0 <3.0.0-0", False),
    ("1.x.5", None, False),
    ("1.*.5", None, False),
    ("1.x.5 || 2.x", None, False),
    ("x.1", None, False),
    ("x.1.2", None, False),
    ("x.x.1", None, False),
    ("x", "*", False),
    ("2.*.*", ">=2.0.0 <3.0.0-0", False),
    ("1.2.*", ">=1.2.0 <1.3.0-0", False),
    ("1.2.* || 2.*", ">=1.2.0 <1.3.0-0||>=2.0.0 <3.0.0-0", False),
    ("2", ">=2.0.0 <3.0.0-0", False),
    ("2.3", ">=2.3.0 <2.4.0-0", False),
    ("~2.4", ">=2.4.0 <2.5.0-0", False),
    ("~>3.2.1", ">=3.2.1 <3.3.0-0", False),
    ("~1", ">=1.0.0 <2.0.0-0", False),
    ("~>1", ">=1.0.0 <2.0.0-0", False),
    ("~> 1", ">=1.0.0 <2.0.0-0", False),
    ("~1.0", ">=1.0.0 <1.1.0-0", False),
    ("~ 1.0", ">=1.0.0 <1.1.0-0", False),
    ("~1", ">=1.0.0-0 <2.0.0-0", True),
    ("~1.x", ">=1.0.0-0 <2.0.0-0", True),
    ("~1.2", ">=1.2.0-0 <1.3.0-0", True),
    ("~1.2.x", ">=1.2.0-0 <1.3.0-0", True),
    ("~0.0", "<0.1.0-0", True),
    ("~1.2.3", ">=1.2.3 <1.3.0-0", True),
    ("~1.2.3-beta.4", ">=1.2.3-beta.4 <1.3.0-0", True),
    ("^0", "<1.0.0-0", False),
    ("^ 1", ">=1.0.0 <2.0.0-0", False),
    ("^0.1", ">=0.1.0 <0.2.0-0", False),
    ("^1.0", ">=1.0.0 <2.0.0-0", False),
    ("^1.2", ">=1.2.0 <2.0.0-0", False),
    ("^0.0.1", ">=0.0.1 <0.0.2-0", False),
    ("^0.0.1-beta", ">=0.0.1-beta <0.0.2-0", False),
    ("^0.1.2", ">=0.1.2 <0.2.0-0", False),
    ("^1.2.3", ">=1.2.3 <2.0.0-0", False),
    ("^1.2.3-beta.4", ">=1.2.3-beta.4 <2.0.0-0", False),
    ("<1", "<1.0.0-0", False),
    ("< 1", "<1.0.0-0", False),
    (">=1", ">=1.0.0", False),
    (">= 1", ">=1.0.0", False),
    ("<1.2", "<1.2.0-0", False),
    ("< 1.2", "<1.2.0-0", False),
    (">01.02.03", None, False),
    ("~1.2.3beta", None, False),
    ("^ 1.2 ^ 1", ">=1.2.0 <2.0.0-0 >=1.0.0", False),
    ("1.2 - 3.4.5", ">=1.2.0 <=3.4.5", False),
    ("1.2.3 - 3.4", ">=1.2.3 <3.5.0-0", False),
    ("1.2 - 3.4", ">=1.2.0 <3.5.0-0", False),
    (">1", ">=2.0.0", False),
    (">1.2", ">=1.3.0", False),
    (">X", "<0.0.0-0", False),
    ("<X", "<0.0.0-0", False),
    ("<x <* || >* 2.x", "<0.0.0-0", False),
    (">x 2.x || * || <x", "*", False),
    (">=09090", None, False),
    (">=09090-0", None, True),
    ("=9007199254740991.0.0", "9007199254740991.0.0", False),
    ("^9007199254740990.0.0", ">=9007199254740990.0.0 <9007199254740991.0.0-0", False),
    ("1.x.x+build >2.x+build", ">=1.0.0 <2.0.0-0 >=3.0.0", False),
    (">=1.x+build <2.x.x+build", ">=1.0.0 <2.0.0-0", False),
    ("1.x.x+build || 2.x.x+build", ">=1.0.0 <2.0.0-0||>=2.0.0 <3.0.0-0", False),
    ("1.x+build.123", ">=1.0.0 <2.0.0-0", False),
    ("1.x.x+meta-data", ">=1.0.0 <2.0.0-0", False),
    ("1.x.x+build.123 >2.x.x+meta-data", ">=1.0.0 <2.0.0-0 >=3.0.0", False),
    ("1.x.x+build <2.x.x+meta", ">=1.0.0 <2.0.0-0", False),
    (">1.x+build <=2.x.x+meta", ">=2.0.0 <3.0.0-0", False),
    (" 1.x.x+build   >2.x.x+build  ", ">=1.0.0 <2.0.0-0 >=3.0.0", False),
    ("^1.x+build", ">=1.0.0 <2.0.0-0", False),
    ("^1.x.x+build", ">=1.0.0 <2.0.0-0", False),
    ("^1.2.x+build", ">=1.2.0 <2.0.0-0", False),
    ("^1.x+meta-data", ">=1.0.0 <2.0.0-0", False),
    ("^1.x.x+build.123", ">=1.0.0 <2.0.0-0", False),
    ("~1.x+build", ">=1.0.0 <2.0.0-0", False),
    ("~1.x.x+build", ">=1.0.0 <2.0.0-0", False),
    ("~1.2.x+build", ">=1.2.0 <1.3.0-0", False),
    ("~1.x+meta-data", ">=1.0.0 <2.0.0-0", False),
    ("~1.x.x+build.123", ">=1.0.0 <2.0.0-0", False),
    ("^1.x.x+build || ~2.x.x+meta", ">=1.0.0 <2.0.0-0||>=2.0.0 <3.0.0-0", False),
    ("~1.x.x+build >2.x+meta", ">=1.0.0 <2.0.0-0 >=3.0.0", False),
    ("^1.x+build.123 <2.x.x+meta-data", ">=1.0.0 <2.0.0-0", False),
    ("1.x.x-alpha+build", ">=1.0.0 <2.0.0-0", False),
    (">1.x.x-alpha+build", ">=2.0.0", False),
    (">=1.x.x-alpha+build <2.x.x+build", ">=1.0.0 <2.0.0-0", False),
    ("1.x.x-alpha+build || 2.x.x+build", ">=1.0.0 <2.0.0-0||>=2.0.0 <3.0.0-0", False),
    (
        "v1.0+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaax6",
        ">=1.0.0 <1.1.0-0",
        False,
    ),
    (
        "1.2.3+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa - 2.0.0",
        ">=1.2.3 <=2.0.0",
        False,
    ),
    (
        "> 1.2.3+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ">1.2.3",
        False,
    ),
    (
        "~1.2.3+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ">=1.2.3 <1.3.0-0",
        False,
    ),
    (
        "^1.2.3+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ">=1.2.3 <2.0.0-0",
        False,
    ),
]

# (greater, lesser)
COMPARISONS: list[tuple[str, str]] = [
    ("0.0.0", "0.0.0-foo"),
    ("0.0.1", "0.0.0"),
    ("1.0.0", "0.9.9"),
    ("0.10.0", "0.9.0"),
    ("0.99.0", "0.10.0"),
    ("2.0.0", "1.2.3"),
    ("1.2.3", "1.2.3-asdf"),
    ("1.2.3", "1.2.3-4"),
    ("1.2.3", "1.2.3-4-foo"),
    ("1.2.3-5-foo", "1.2.3-5"),
    ("1.2.3-5", "1.2.3-4"),
    ("1.2.3-5-foo", "1.2.3-5-Foo"),
    ("3.0.0", "2.7.2+asdf"),
    ("1.2.3-a.10", "1.2.3-a.5"),
    ("1.2.3-a.b", "1.2.3-a.5"),
    ("1.2.3-a.b", "1.2.3-a"),
    ("1.2.3-a.b.c.10.d.5", "1.2.3-a.b.c.5.d.100"),
    ("1.2.3-r2", "1.2.3-r100"),
    ("1.2.3-r100", "1.2.3-R2"),
]

# (a, b): equal precedence
EQUALITY: list[tuple[str, str]] = [
    ("1.2.3-beta+build", "1.2.3-beta+otherbuild"),
    ("1.2.3+build", "1.2.3+otherbuild"),
]

# (text, major, minor, patch, prerelease, build)
VALID: list[tuple[str, int, int, int, tuple[int | str, ...], tuple[str, ...]]] = [
    ("1.0.0", 1, 0, 0, (), ()),
    ("2.1.0", 2, 1, 0, (), ()),
    ("3.2.1", 3, 2, 1, (), ()),
    ("1.2.3-0", 1, 2, 3, (0,), ()),
    ("1.2.3-123", 1, 2, 3, (123,), ()),
    ("1.2.3-1.2.3", 1, 2, 3, (1, 2, 3), ()),
    ("1.2.3-1a", 1, 2, 3, ("1a",), ()),
    ("1.2.3-a1", 1, 2, 3, ("a1",), ()),
    ("1.2.3-alpha", 1, 2, 3, ("alpha",), ()),
    ("1.2.3-alpha.1", 1, 2, 3, ("alpha", 1), ()),
    ("1.2.3-alpha-1", 1, 2, 3, ("alpha-1",), ()),
    ("1.2.3-alpha-.-beta", 1, 2, 3, ("alpha-", "-beta"), ()),
    ("1.2.3+456", 1, 2, 3, (), ("456",)),
    ("1.2.3+build", 1, 2, 3, (), ("build",)),
    ("1.2.3+new-build", 1, 2, 3, (), ("new-build",)),
    ("1.2.3+build.1", 1, 2, 3, (), ("build", "1")),
    ("1.2.3+build.1a", 1, 2, 3, (), ("build", "1a")),
    ("1.2.3+build.a1", 1, 2, 3, (), ("build", "a1")),
    ("1.2.3+build.alpha", 1, 2, 3, (), ("build", "alpha")),
    ("1.2.3+build.alpha.beta", 1, 2, 3, (), ("build", "alpha", "beta")),
    ("1.2.3-alpha+build", 1, 2, 3, ("alpha",), ("build",)),
]
