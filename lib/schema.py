"""The typed schema of ``conf/``: every knob's type and range, checked right after composition.

Types are not written twice. Each key's type is inferred from its value in the group's
documented defaults (``conf/<group>/default.yaml`` and the root keys of ``conf/config.yaml``,
merged and resolved, so an interpolation has the type of what it points to):

* ``int`` / ``float`` (an int is accepted) / ``bool`` / ``str`` / ``list`` (items typed
  by the default's items when they share one type) / mapping (its keys are the known ones);
* a key whose default is ``null`` has no type to infer: it declares one in
  ``conf/schema.yaml`` (``max_depth: {type: int, min: 1}``) and may stay ``null``;
* a mapping listed under ``open`` in ``conf/schema.yaml`` (or whose default is ``{}``, as
  ``extra``, the home of one-off keys) takes new keys (``+map.key=value``); new entries
  share the schema of its first default entry, or the one declared for ``<map>.*``;
* a mapping listed under ``free`` (a registry of Hydra ``_target_`` nodes, such as
  ``causal.estimators``) takes new keys too, and nothing inside its entries is checked here:
  each entry has the arguments of its own target (the code that builds it checks it).

``conf/schema.yaml`` holds only what a default cannot say: ranges (``min`` / ``max``
inclusive, ``gt`` / ``lt`` exclusive, ``multiple_of``), ``choices``, ``choices_of`` (a
mapping whose keys are the choices; with ``choices`` too, either is allowed), ``items`` (a rule for each list item), ``nullable``
and explicit ``type`` lists. Rule keys are dotted paths; ``*`` matches any part of a
path (``"*dropout"`` is every dropout). A rule that matches no key is an error, so a
renamed knob cannot leave its range behind.

Examples
--------
>>> from lib.config import CONF_DIR
>>> schema = load_schema(CONF_DIR)
>>> schema.leaf("causal.cv").describe({})
'an int >= 2'
>>> schema.leaf("causal.forest.max_depth").describe({})
'null or an int >= 1'
"""
from __future__ import annotations

import difflib
import fnmatch
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from lib.errors import InputError

TYPES = ("bool", "int", "float", "str", "list", "map")
_ARTICLE = {"bool": "a bool", "int": "an int", "float": "a float", "str": "a string", "list": "a list", "map": "a mapping"}
_RULE_FIELDS = {"type", "nullable", "min", "max", "gt", "lt", "multiple_of", "choices", "choices_of", "items"}


@dataclass
class Problem:
    """One bad key: where its value came from, what is wrong and how to fix it."""

    source: str
    key: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.source}: {self.problem}. Fix: {self.fix}"


class ConfigError(InputError, ConfigCompositionException):
    """A composed config that breaks the schema; one line per bad key.

    It is also Hydra's ``ConfigCompositionException`` (the config could not be
    composed), so code that catches Hydra's error for a bad override still does.
    """

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        first = self.problems[0]
        self.source, self.column, self.problem, self.fix = first.source, first.key, first.problem, first.fix
        Exception.__init__(self, "\n".join(str(p) for p in self.problems))


def _type_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    raise TypeError(f"unsupported config value {value!r}")


def _is_type(value: Any, name: str) -> bool:
    kind = _type_of(value)
    return kind == name or (name == "float" and kind == "int")


@dataclass
class Leaf:
    """Type and range of one key (or of the items of a list, or the entries of an open map)."""

    path: str
    types: tuple[str, ...] = ()          # empty: any type
    nullable: bool = False
    default: Any = None
    bounds: dict[str, float] = field(default_factory=dict)   # min / max / gt / lt / multiple_of
    choices: tuple[Any, ...] | None = None
    choices_of: str | None = None
    items: "Leaf | None" = None

    def apply(self, rule: Mapping[str, Any], where: str) -> None:
        unknown = set(rule) - _RULE_FIELDS
        if unknown:
            raise ValueError(f"{where}: unknown rule field(s) {sorted(unknown)} for {self.path}; "
                             f"use {sorted(_RULE_FIELDS)}")
        if "type" in rule:
            types = rule["type"] if isinstance(rule["type"], list) else [rule["type"]]
            bad = [t for t in types if t not in TYPES]
            if bad:
                raise ValueError(f"{where}: {self.path}: type {bad} is not one of {list(TYPES)}")
            self.types = tuple(types)
        if "nullable" in rule:
            self.nullable = bool(rule["nullable"])
        self.bounds.update({k: rule[k] for k in ("min", "max", "gt", "lt", "multiple_of") if k in rule})
        if "choices" in rule:
            self.choices = tuple(rule["choices"])
        if "choices_of" in rule:
            self.choices_of = str(rule["choices_of"])
        if "items" in rule:
            self.items = self.items or Leaf(f"{self.path}[]")
            self.items.apply(rule["items"], where)

    def _choices(self, root: Mapping[str, Any]) -> list[Any] | None:
        if self.choices is None and self.choices_of is None:
            return None
        node = _select(root, self.choices_of) if self.choices_of is not None else None
        return list(self.choices or ()) + (sorted(node) if isinstance(node, dict) else [])

    def describe(self, root: Mapping[str, Any]) -> str:
        """What is allowed, in words (``'null or an int >= 1'``)."""
        choices = self._choices(root)
        if choices is not None:
            text = f"one of {choices}" + (f" (the keys of {self.choices_of})" if self.choices_of else "")
        else:
            kinds = [t for t in self.types if not (t == "int" and "float" in self.types)]
            text = " or ".join(_ARTICLE[t] + (" (true or false)" if t == "bool" else "") for t in kinds) or "any value"
            if self.items is not None and self.types == ("list",):
                text = f"a list, each item {self.items.describe(root)}"
            words = {"min": ">=", "max": "<=", "gt": ">", "lt": "<"}
            limits = [f"{words[k]} {v}" for k, v in self.bounds.items() if k in words]
            if "multiple_of" in self.bounds:
                limits.append(f"a multiple of {self.bounds['multiple_of']}")
            if limits:
                text += " " + " and ".join(limits)
        return f"null or {text}" if self.nullable else text

    def check(self, value: Any, root: Mapping[str, Any]) -> str | None:
        """Why ``value`` is not allowed, or ``None`` when it is."""
        if value is None:
            return None if self.nullable else "is null"
        if self.types and not any(_is_type(value, t) for t in self.types):
            return f"is {_ARTICLE[_type_of(value)]}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            b = self.bounds
            if (("min" in b and value < b["min"]) or ("max" in b and value > b["max"])
                    or ("gt" in b and value <= b["gt"]) or ("lt" in b and value >= b["lt"])
                    or ("multiple_of" in b and value % b["multiple_of"] != 0)):
                return "is out of range"
        choices = self._choices(root)
        if choices is not None and not any(value == c and type(value) is type(c) for c in choices):
            return "is not a choice"
        if isinstance(value, list) and self.items is not None:
            for item in value:
                if self.items.check(item, root) is not None:
                    return f"holds {_override_value(item)}"
        return None


@dataclass
class Node:
    """A mapping of known keys; an open one takes any key and checks its values with ``entry``."""

    path: str
    children: dict[str, "Node | Leaf"] = field(default_factory=dict)
    open: bool = False
    entry: "Node | Leaf | None" = None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _infer(value: Any, path: str, open_paths: set[str], free_paths: set[str] = frozenset()) -> Node | Leaf:
    if path in free_paths:
        return Node(path, open=True)            # any entry, unchecked (entry None)
    if isinstance(value, dict):
        children = {k: _infer(v, _join(path, k), open_paths, free_paths) for k, v in value.items()}
        if path in open_paths or not value:
            entry = _infer(next(iter(value.values())), _join(path, "*"), open_paths) if value else None
            _forget_defaults(entry)                 # a new entry has no default to suggest
            return Node(path, children, open=True, entry=entry)
        return Node(path, children)
    kind = _type_of(value)
    leaf = Leaf(path, (kind,) if kind else (), nullable=value is None, default=value)
    if isinstance(value, list) and value:
        kinds = {_type_of(v) for v in value}
        if len(kinds) == 1 and not kinds & {None, "map"}:
            leaf.items = _infer(value[0], f"{path}[]", open_paths)
            assert isinstance(leaf.items, Leaf)
            leaf.items.default = None
    return leaf


def _forget_defaults(node: Node | Leaf | None) -> None:
    if isinstance(node, Leaf):
        node.default = None
    elif node is not None:
        for child in node.children.values():
            _forget_defaults(child)


def _select(root: Mapping[str, Any], path: str) -> Any:
    node: Any = root
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


class Schema:
    """Inferred types plus the rules of ``conf/schema.yaml``; :meth:`validate` checks a composed tree."""

    def __init__(self, reference: dict[str, Any], rules: Mapping[str, Any], open_paths: Iterable[str],
                 rules_file: str = "conf/schema.yaml", free_paths: Iterable[str] = ()):
        self.root = _infer(reference, "", set(open_paths), set(free_paths))
        assert isinstance(self.root, Node)
        self.leaves: dict[str, Leaf] = {}
        self.nodes: dict[str, Node] = {}
        self._index(self.root)
        for section, paths in (("open", open_paths), ("free", free_paths)):
            stale = sorted(p for p in paths if not isinstance(_select(reference, p), dict))
            if stale:
                raise ValueError(f"{rules_file}: '{section}' names {stale}, which are no mappings of conf/*/default.yaml")
        for pattern, rule in rules.items():
            self._rule(str(pattern), rule, rules_file)

    def _index(self, node: Node | Leaf) -> None:
        if isinstance(node, Leaf):
            self.leaves[node.path] = node
            return
        if node.path:
            self.nodes[node.path] = node
        for child in node.children.values():
            self._index(child)
        if node.entry is not None:
            self._index(node.entry)

    def _rule(self, pattern: str, rule: Mapping[str, Any], where: str) -> None:
        hits = [p for p in self.leaves if fnmatch.fnmatchcase(p, pattern)]
        parent = self.nodes.get(pattern[:-2]) if pattern.endswith(".*") else None
        if not hits and parent is not None and parent.open and parent.entry is None:
            parent.entry = Leaf(pattern)              # the entry schema of a map that is empty by default
            self.leaves[pattern] = parent.entry
            hits = [pattern]
        if not hits:
            close = difflib.get_close_matches(pattern, list(self.leaves), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"{where}: rule {pattern!r} matches no key of conf/*/default.yaml{hint}; "
                             "rename or delete the rule")
        for target in (rule.get("choices_of"), (rule.get("items") or {}).get("choices_of")):
            if target is not None and target not in self.nodes:
                raise ValueError(f"{where}: rule {pattern!r}: choices_of {target!r} is no mapping of the config")
        for path in hits:
            self.leaves[path].apply(rule, where)

    def leaf(self, path: str) -> Leaf:
        """The rule of one key, e.g. ``schema.leaf("causal.cv")``."""
        return self.leaves[path]

    def known(self) -> list[str]:
        """Every known key and mapping (dotted), for suggestions."""
        return sorted({*self.leaves, *self.nodes})

    def suggest(self, key: str) -> str:
        """``did you mean X?`` for an unknown ``key``: a close sibling first, then any close key."""
        parent_path = key.rpartition(".")[0]
        parent = self.nodes.get(parent_path, self.root if not parent_path else None)
        siblings = [_join(parent_path, k) for k in parent.children] if parent is not None else []
        ancestors = {key.rsplit(".", n)[0] for n in range(1, key.count(".") + 1)}
        others = [k for k in self.known() if "*" not in k and "[]" not in k and k not in ancestors]
        close = (difflib.get_close_matches(key, siblings, n=1, cutoff=0.6)
                 or difflib.get_close_matches(key, others, n=1, cutoff=0.8))
        if close:
            return f"did you mean {close[0]}?"
        if parent is not None and parent is not self.root:
            return f"known keys of {parent.path}: {sorted(parent.children)}"
        return f"known top-level keys: {sorted(self.root.children)}"

    def unknown_fix(self, key: str) -> str:
        """What to do about an unknown ``key``: its closest known key, and where a new knob goes."""
        free = " or, for a one-off key, +extra.<name>=..." if "extra" in self.nodes else ""
        return f"{self.suggest(key)} (a new knob is added to {_home(key)} with its documented default{free})"

    def open_parent(self, key: str) -> str | None:
        """The open mapping that ``key`` would be an entry of, if any."""
        parent = self.nodes.get(key.rpartition(".")[0])
        return parent.path if parent is not None and parent.open else None

    def validate(self, tree: Mapping[str, Any], where: "Where") -> list[Problem]:
        """Every key of ``tree`` (a resolved container) that breaks the schema."""
        problems: list[Problem] = []
        self._walk(self.root, tree, "", tree, where, problems)
        return problems

    def _walk(self, schema: Node | Leaf | None, value: Any, path: str, root: Mapping[str, Any], where: "Where",
              problems: list[Problem]) -> None:
        if schema is None:
            return
        if isinstance(schema, Leaf):
            why = schema.check(value, root)
            if why is not None:
                allowed = schema.describe(root)
                example = f", e.g. {path}={_override_value(schema.default)} (the default)" if schema.default is not None else ""
                problems.append(Problem(where.source(path), path,
                                        f"{path}={_override_value(value)} {why}; allowed: {allowed}",
                                        f"set {path} to {allowed}{example}"))
            return
        if not isinstance(value, dict):
            problems.append(Problem(where.source(path), path,
                                    f"{path}={_override_value(value)} is {_ARTICLE[_type_of(value)]}; "
                                    f"allowed: a mapping with keys {sorted(schema.children)}",
                                    f"set single keys ({path}.<key>=...), see {_home(path)}"))
            return
        for key, sub in value.items():
            child_path = _join(path, str(key))
            if key in schema.children:
                self._walk(schema.children[key], sub, child_path, root, where, problems)
            elif schema.open:
                self._walk(schema.entry, sub, child_path, root, where, problems)
            else:
                problems.append(Problem(where.source(child_path), child_path, f"unknown key {child_path}",
                                        self.unknown_fix(child_path)))
        for key in schema.children:
            if key not in value:
                child_path = _join(path, key)
                problems.append(Problem(where.source(child_path), child_path, f"missing key {child_path}",
                                        f"give it a value ({schema.children[key].describe(root) if isinstance(schema.children[key], Leaf) else 'a mapping'}); "
                                        f"keys are set, never deleted"))


def _home(key: str) -> str:
    """The file where a key's default is documented."""
    group = key.split(".")[0]
    return f"conf/{group}/default.yaml" if "." in key else "conf/config.yaml"


def _override_value(value: Any) -> str:
    """``value`` as it would be written in an override (``'abc'``, ``3``, ``[1, 2]``, ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


_OVERRIDE_KEY = re.compile(r"^[~+]*([^=~+][^=]*)")


class Where:
    """Names where a key's value came from: the override that set it, or the conf file."""

    def __init__(self, conf_dir: Path, preset: str, overrides: Sequence[str]):
        self.conf_dir, self.preset, self.overrides = conf_dir, preset, list(overrides)

    def source(self, path: str) -> str:
        for ov in reversed(self.overrides):
            m = _OVERRIDE_KEY.match(ov)
            if m and (path == m.group(1) or path.startswith(m.group(1) + ".") or m.group(1).startswith(path + ".")):
                return f"override '{ov}'"
        group, _, rest = path.partition(".")
        candidates = [(self.conf_dir / group / f"{o}.yaml", rest) for o in (self.preset, "default")] if rest else []
        candidates += [(self.conf_dir / "preset" / f"{self.preset}.yaml", path), (self.conf_dir / "config.yaml", path)]
        for file, key in candidates:
            if not file.is_file():
                continue
            parent_key, _, last = key.rpartition(".")
            tree = OmegaConf.to_container(OmegaConf.load(file))     # unresolved: interpolations stay text
            parent = _select(tree, parent_key) if parent_key else tree
            if isinstance(parent, dict) and last in parent:
                where, raw = str(file.relative_to(self.conf_dir.parent)), parent[last]
                # an interpolated value comes from its target: say so
                return f"{where} ({path}: {raw})" if isinstance(raw, str) and raw.startswith("${") else where
        return f"config (preset {self.preset})"


def reference_tree(conf_dir: Path) -> dict[str, Any]:
    """The documented defaults: root keys of ``config.yaml`` and each group's default file, resolved."""
    root = OmegaConf.to_container(OmegaConf.load(conf_dir / "config.yaml"))
    tree = {k: v for k, v in root.items() if k != "defaults"}
    for entry in root.get("defaults", []):
        if not isinstance(entry, dict):
            continue
        for group, option in entry.items():
            path = conf_dir / str(group) / f"{option}.yaml"
            if not path.is_file() or "@package _global_" in path.read_text():
                continue                     # the preset: it picks group files, it adds no knobs
            node = OmegaConf.to_container(OmegaConf.load(path))
            tree[str(group)] = {k: v for k, v in node.items() if k != "defaults"}
    tree["preset_name"] = "reference"      # set by a preset file; paths interpolate it
    return OmegaConf.to_container(OmegaConf.create(tree), resolve=True)


@functools.lru_cache(maxsize=4)
def load_schema(conf_dir: Path) -> Schema:
    """The schema of ``conf_dir`` (cached: it is read once per process)."""
    rules_path = conf_dir / "schema.yaml"
    raw = OmegaConf.to_container(OmegaConf.load(rules_path)) if rules_path.is_file() else {}
    unknown = set(raw) - {"open", "free", "rules"}
    if unknown:
        raise ValueError(f"{rules_path}: unknown sections {sorted(unknown)}; use 'open', 'free' and 'rules'")
    return Schema(reference_tree(conf_dir), raw.get("rules") or {}, raw.get("open") or [],
                  str(rules_path.relative_to(conf_dir.parent)), raw.get("free") or [])


def validate(cfg: Any, conf_dir: Path, preset: str, overrides: Sequence[str]) -> None:
    """Raise :class:`ConfigError` listing every key of the composed ``cfg`` that breaks the schema."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    problems = load_schema(conf_dir).validate(tree, Where(conf_dir, preset, overrides))
    if problems:
        raise ConfigError(problems)


def missing_keys(cfg: Any, conf_dir: Path, preset: str, overrides: Sequence[str]) -> list[Problem]:
    """Deleted keys of the unresolved ``cfg`` (an interpolation pointing at one cannot resolve)."""
    tree = OmegaConf.to_container(cfg, resolve=False)
    problems = load_schema(conf_dir).validate(tree, Where(conf_dir, preset, overrides))
    return [p for p in problems if p.problem.startswith("missing key")]


_NOT_OVERRIDABLE = re.compile(r"Could not override '([^']+)'")


def explain_unknown_override(exc: Exception, conf_dir: Path, preset: str, overrides: Sequence[str]) -> Exception:
    """Hydra's "Could not override 'x'" with the closest known key (or how to add a map entry)."""
    m = _NOT_OVERRIDABLE.search(str(exc))
    if not m:
        return exc
    key = m.group(1)
    schema = load_schema(conf_dir)
    ov = next((o for o in overrides if (k := _OVERRIDE_KEY.match(o)) and k.group(1) == key), key)
    value = ov.partition("=")[2]
    opened = schema.open_parent(key)
    if key in schema.nodes and schema.nodes[key].open:
        fix = f"add entries one by one with a leading '+' (+{key}.<name>=...), or replace the whole map with ++{ov}"
    elif key in schema.nodes or key in schema.leaves:
        return exc
    elif opened:
        fix = f"{opened} takes new entries with a leading '+': +{key}={value}"
    else:
        fix = schema.unknown_fix(key)
    return ConfigError([Problem(f"override '{ov}'", key, f"cannot set {key}" if key in schema.nodes
                                else f"unknown key {key}", fix)])
