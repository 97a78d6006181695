"""Config files and ``key=value`` overrides for the commands that run experiments (search, train, evaluate).

A run's settings are a frozen dataclass whose fields are typed (nested dataclasses for its sections, e.g.
``train: TrainConfig``). OmegaConf's structured configs read YAML files and ``key=value`` overrides against that
schema, so an unknown key or a value of the wrong type is refused before any work; the dataclass's own
``__post_init__`` then checks the values (ranges, combinations). Every error is a :class:`ConfigError` (or, when the
value came from a command-line flag, a :class:`UsageError`) naming the file, flag or override and the key.

Layers, lowest precedence first: the dataclass defaults (or a resumed run's saved config), the config file
(``--config FILE.yaml``), the flags given explicitly on the command line, the ``key=value`` overrides.

Files are read defensively: at most 1 MiB, UTF-8, a mapping at the top, at most 16 levels deep and at most 100,000
nodes once YAML aliases are expanded (an alias "bomb" is refused, not expanded). Non-finite numbers are refused.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hwnas._cli import INT_MAX, PLAIN_NUMBER, clip, printable, quote, same_value
from hwnas.errors import ConfigError, UsageError

T = TypeVar("T")
MAX_BYTES = 1 << 20
MAX_DEPTH = 16
MAX_NODES = 100_000
CONFIG_NAME = "config.yaml"


@dataclass(frozen=True)
class Layer:
    """One source of settings: a nested mapping and where each of its keys came from.

    ``where`` names the whole layer (``config file runs/a.yaml``); ``where_key`` overrides it per dotted key
    (``--lr`` for ``train.lr``), so messages name the flag the user typed.
    """

    values: Mapping[str, Any]
    where: str
    where_key: Mapping[str, str] = field(default_factory=dict)

    def source(self, key: str) -> str:
        return self.where_key.get(key, self.where)

    def keys(self) -> list[str]:
        return list(_leaves(self.values))


@dataclass(frozen=True)
class Resolved(typing.Generic[T]):
    """The built config, the dotted keys any layer set, and where each came from."""

    config: T
    provenance: dict[str, str]

    def was_set(self, key: str) -> bool:
        return key in self.provenance


# ---------------------------------------------------------------------------------------------------------------
# reading

def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file as a plain nested dict, with every failure a :class:`ConfigError` naming the file."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(path)
    where = f"config file {printable(str(path))}"
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read the file ({(e.strerror or str(e)).lower()}), {where}, expected a readable "
                          "YAML file") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"file is larger than {MAX_BYTES // 1024} KiB, {where}, expected a small YAML config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text (byte {e.start}), {where}, expected a UTF-8 YAML file") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise ConfigError(f"nested too deeply, {where}, expected at most {MAX_DEPTH} levels") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML ({_yaml_reason(e)}), {where}, expected YAML like 'train: {{lr: 0.01}}'"
                          ) from None
    if node is None:
        return {}
    _check_shape(node, where)
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"the top level is a {_node_kind(node)}, {where}, expected a mapping of keys to values")
    try:
        cfg = OmegaConf.create(text)  # OmegaConf's loader: refuses duplicate keys
        data = OmegaConf.to_container(cfg, resolve=False)
    except (OmegaConfBaseException, yaml.YAMLError, ValueError, TypeError) as e:
        raise ConfigError(f"{_yaml_reason(e)}, {where}, expected YAML with unique string keys") from None
    if not isinstance(data, dict):
        raise ConfigError(f"the top level is not a mapping, {where}, expected a mapping of keys to values")
    return data


def _yaml_reason(e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or _first_line(e)
    if mark is None:  # OmegaConf's loader re-raises with the text only
        found = re.search(r"(found [^\n]*)\n\s*in [^,]*, line (\d+), column (\d+)", str(e))
        return f"{found.group(1)} at line {found.group(2)}, column {found.group(3)}" if found else str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)


def _node_kind(node: Any) -> str:
    import yaml

    return {yaml.SequenceNode: "list", yaml.ScalarNode: "single value"}.get(type(node), "value")


def _check_shape(root: Any, where: str) -> None:
    """Refuse YAML deeper than MAX_DEPTH or larger than MAX_NODES with aliases expanded (memoised, iterative)."""
    import yaml

    size: dict[int, int] = {}
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"nested more than {MAX_DEPTH} levels deep, {where}, expected at most {MAX_DEPTH} "
                              "levels (sections of key: value)")
        if isinstance(node, yaml.ScalarNode):
            size[id(node)] = 1
            _check_plain_number(node, where)
            continue
        children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else node.value
        if done:
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            if size[id(node)] > MAX_NODES:
                raise ConfigError(f"more than {MAX_NODES} values once YAML aliases are expanded, {where}, expected "
                                  "a small config")
            continue
        if id(node) in size:
            continue
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in size)


_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")  # no leading zero: YAML 1.1 reads 010 as octal
_PLAIN_FLOAT = re.compile(rf"{PLAIN_NUMBER.pattern}|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")  # .inf/.nan refused later


def _check_plain_number(node: Any, where: str) -> None:
    """Refuse YAML 1.1 number spellings that silently read as another value: ``010`` (octal 8), ``1:00``
    (base 60: 60), ``0x10``, ``0b11``, ``1_0`` (10). A number is plain decimal, like on the command line."""
    if node.style is None and node.tag.endswith((":int", ":float")):
        plain = _PLAIN_INT if node.tag.endswith(":int") else _PLAIN_FLOAT
        if not plain.fullmatch(node.value.strip()):
            raise ConfigError(f"ambiguous number {node.value!r} (YAML reads it as octal, hex, binary, base 60 or "
                              f"with digit separators), {where}, expected a plain decimal number like 10 or 0.01 "
                              "(quote it for a string)")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ---------------------------------------------------------------------------------------------------------------
# layers

def file_layer(path: str | Path) -> Layer:
    """``--config FILE.yaml``."""
    return Layer(load_yaml(path), f"config file {printable(str(path))}")


def override_layer(texts: Sequence[str], where: str = "override") -> Layer:
    """``key=value`` overrides (dotted keys, YAML values: ``train.lr=0.01``, ``train.milestones=[20,30]``)."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    values: dict[str, Any] = {}
    where_key: dict[str, str] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key.strip()):
            raise ConfigError(f"bad override {text!r}, {where}, expected key=value with a dotted key like "
                              "train.lr=0.01")
        shown = clip(text)
        try:
            node = yaml.compose(value or "null", Loader=yaml.SafeLoader)
        except RecursionError:
            raise ConfigError(f"value nested too deeply, {where} {shown}, expected at most {MAX_DEPTH} levels"
                              ) from None
        except yaml.YAMLError as e:
            raise ConfigError(f"value is not valid YAML ({clip(_yaml_reason(e), 120)}), {where} {shown}, expected "
                              "key=value with a YAML value like train.milestones=[20,30] (quote a string)") from None
        if node is not None:
            _check_shape(node, f"{where} {shown}")
        try:
            one = OmegaConf.to_container(OmegaConf.from_dotlist([text]), resolve=False)
        except (yaml.YAMLError, RecursionError) as e:  # OmegaConf's loader: duplicate keys, unknown tags
            raise ConfigError(f"value is not valid YAML ({clip(_yaml_reason(e), 120)}), {where} {shown}, expected "
                              "key=value with a YAML value like train.milestones=[20,30] (quote a string)") from None
        except (OmegaConfBaseException, ValueError) as e:
            raise ConfigError(f"bad override {quote(text)} ({clip(_first_line(e), 120)}), {where}, expected key=value"
                              ) from None
        dotted = key.strip()
        if dotted in where_key and not same_value(lookup([Layer(values, where)], dotted), lookup([Layer(one, where)],
                                                                                                  dotted)):
            raise ConfigError(f"{dotted} given twice with different values, {where} {shown} (after "
                              f"{clip(where_key[dotted])}), expected each key once (or the same value repeated)")
        _deep_update(values, one)
        where_key[dotted] = f"{where} {printable(text)}"  # messages name it: control characters escaped
    return Layer(values, where, where_key)


def flag_layer(entries: Iterable[tuple[str, Any, str]]) -> Layer:
    """``(dotted key, value, flag)`` for each flag given on the command line."""
    values: dict[str, Any] = {}
    where_key: dict[str, str] = {}
    seen: dict[str, Any] = {}
    for key, value, flag in entries:
        if key in seen and not same_value(seen[key], value):  # -o k=1 -o k=2, or --width-mult with -o width_mult=
            raise UsageError(f"{key} given twice with different values ({clip(repr(seen[key]))} by {where_key[key]} "
                             f"then {clip(repr(value))} by {flag}), {flag}, expected one value per key (or the same "
                             "value repeated)")
        seen[key] = value
        _deep_update(values, _nest(key, value))
        where_key[key] = flag
    return Layer(values, "command line", where_key)


def _nest(key: str, value: Any) -> dict[str, Any]:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _deep_update(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, Mapping) and isinstance(into.get(k), dict):
            _deep_update(into[k], v)
        else:
            into[k] = dict(v) if isinstance(v, Mapping) else v


def _leaves(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            yield from _leaves(v, key + ".")
        else:
            yield key


def lookup(layers: Sequence[Layer], key: str, default: Any = None) -> Any:
    """The value of dotted ``key`` in the highest layer that sets it (``default`` if none does)."""
    for layer in reversed(layers):
        node: Any = layer.values
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            return node
    return default


# ---------------------------------------------------------------------------------------------------------------
# building

def resolve(base: T, layers: Sequence[Layer]) -> Resolved[T]:
    """``base`` (a dataclass instance) with each layer merged on top, type-checked and validated."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    cls = type(base)
    cfg = OmegaConf.structured(base)
    OmegaConf.set_readonly(cfg, False)
    provenance: dict[str, str] = {}
    for layer in layers:
        for key in layer.keys():
            value = lookup([layer], key)
            _check_leaf_types(cls, key, value, layer.source(key))
            try:
                cfg = OmegaConf.merge(cfg, _nest(key, value))
            except OmegaConfBaseException as e:
                raise _config_error(e, cls, key, value, layer.source(key)) from None
            provenance[key] = layer.source(key)
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise _config_error(e, cls, key, None, _source(provenance, key)) from None
    for key, value in _scalars(plain):
        if isinstance(value, float) and not math.isfinite(value):
            raise _error(f"non-finite number {value}", _source(provenance, key), key, "a finite number")
    try:
        built = OmegaConf.to_object(cfg)
    except UsageError as e:
        raise _renamed(e, cls, provenance) from None
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise _config_error(e, cls, key, None, _source(provenance, key)) from None
    return Resolved(built, provenance)


_YAML_BOOLEANS = frozenset({"true", "false", "yes", "no", "on", "off"})


def _check_leaf_types(cls: type, key: str, value: Any, where: str) -> None:
    """Refuse the values OmegaConf would silently convert: any string for a number or boolean field (``'5'``,
    ``٥``, ``y``; ``${...}`` interpolations still resolve), a number for a boolean field (``amp: 1``), a boolean
    for a number field, an integer beyond 2**31-1, and (in files and overrides) an unquoted number or boolean for a
    text field (``data.root=1.10`` would become the folder '1.1')."""
    for dotted, leaf in _scalars(value, f"{key}."):
        if isinstance(leaf, str) and leaf.lstrip().startswith("${"):
            continue
        hint = _field_type(cls, dotted)
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        kinds = [a for a in typing.get_args(hint) if a is not type(None)] if union else [hint]
        if leaf is None:
            if hint in (int, float, bool, str) and not union:  # null where no null is allowed
                raise _error("bad value null", where, dotted, _describe(hint))
            continue
        if not kinds:
            continue
        numeric = all(k in (int, float, bool) for k in kinds)
        field = re.sub(r"(\.[0-9]+)+$", "", dotted)  # a list element is reported at its list, with the list's type
        if field != dotted:
            dotted, hint = field, _field_type(cls, field)
        if numeric and isinstance(leaf, str) and leaf.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise _error(f"non-finite number {leaf[:60]!r}", where, dotted, "a finite number")
        if numeric and isinstance(leaf, str):
            text = leaf.strip()
            looks_scalar = PLAIN_NUMBER.fullmatch(text) or text.lower() in _YAML_BOOLEANS
            what = f"quoted value {leaf[:60]!r} (a string)" if looks_scalar else \
                f"bad value {leaf[:60]!r}"
            raise _error(what, where, dotted, f"{_describe(hint)}, unquoted" if what.startswith("quoted") else
                         _describe(hint))
        if numeric and (kinds == [bool]) != isinstance(leaf, bool):
            raise _error(f"bad value {leaf!r}", where, dotted, _describe(hint))
        if numeric and isinstance(leaf, int) and not isinstance(leaf, bool) and abs(leaf) > INT_MAX:
            raise _error(f"bad value {leaf}", where, dotted, f"{_describe(hint)} of at most {INT_MAX}")
        if kinds == [str] and isinstance(leaf, (bool, int, float)) and not where.startswith("-"):
            why = "YAML reads 1.10 as the number 1.1" if not isinstance(leaf, bool) else "YAML reads yes/true as booleans"
            raise _error(f"unquoted {type(leaf).__name__} {leaf!r}", where, dotted, f"a string (quote it: {why})")


def _scalars(value: Any, prefix: str = "", lists: bool = True) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _scalars(v, f"{prefix}{k}.", lists)
    elif lists and isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _scalars(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), value


def _source(provenance: Mapping[str, str], key: str) -> str:
    parts = key.split(".")
    for n in range(len(parts), 0, -1):  # a list item (train.milestones.1) comes from its list's layer
        if ".".join(parts[:n]) in provenance:
            return provenance[".".join(parts[:n])]
    return "default"


def _error(what: str, where: str, key: str, expected: str) -> HwnasErrorType:
    """A flag's error is a UsageError naming the flag; a file's or override's a ConfigError naming the key."""
    if where.startswith("-"):
        return UsageError(f"{what}, {where}, expected {expected}")
    return ConfigError(f"{what}, {where}: key {key}, expected {expected}")


HwnasErrorType = ConfigError | UsageError


def _config_error(e: Exception, cls: type, key: str, value: Any, where: str) -> HwnasErrorType:
    from omegaconf.errors import ConfigKeyError, InterpolationResolutionError, KeyValidationError

    full_key = getattr(e, "full_key", None) or key
    if isinstance(e, (ConfigKeyError, KeyValidationError)) or _field_type(cls, full_key) is _UNKNOWN:
        parent, _, name = full_key.rpartition(".")
        known = _field_names(cls, parent)
        hint = ""
        if known is not None and parent == "":
            sections = [s for s in known if name in (_field_names(cls, s) or ())]
            hint = f" (did you mean {sections[0]}.{name}?)" if sections else ""
        expected = f"one of: {', '.join(known)}" if known else "no keys here (a single value)"
        return _error(f"unknown key {full_key!r}{hint}", where, full_key, expected)
    if isinstance(e, InterpolationResolutionError):
        return _error(f"cannot resolve an interpolation ({_first_line(e)})", where, full_key,
                      "a value without ${...} or one that resolves")
    shown = value if value is not None else _first_line(e)
    return _error(f"bad value {shown!r}", where, full_key, _describe(_field_type(cls, full_key)))


def _renamed(e: UsageError, cls: type, provenance: Mapping[str, str]) -> HwnasErrorType:
    """``bad value X, TrainConfig.lr, expected ...`` -> the same message naming the flag, file or override."""
    text = str(e)
    m = re.search(r"\b([A-Z]\w*)\.(\w+)\b", text)
    if m is None:
        return e
    key = next((p for p in _section_paths(cls) if _section_class(cls, p).__name__ == m.group(1)), None)
    if key is None:
        return e
    dotted = f"{key}.{m.group(2)}" if key else m.group(2)
    where = _source(provenance, dotted)
    if where == "default":  # a check across fields failed on one nobody set
        return UsageError(text.replace(m.group(0), f"{dotted} (not set)", 1))
    if where.startswith("-"):
        return UsageError(text.replace(m.group(0), where, 1))
    return ConfigError(text.replace(m.group(0), f"{where}: key {dotted}", 1))


# ---------------------------------------------------------------------------------------------------------------
# the schema (dataclass fields) for messages

_UNKNOWN = object()


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _field_type(cls: type, dotted: str) -> Any:
    node: Any = cls
    for part in dotted.split("."):
        if dataclasses.is_dataclass(node):
            hints = _hints(node)
            if part not in hints:
                return _UNKNOWN
            node = hints[part]
        elif typing.get_origin(node) in (dict, Mapping) or node is Any:
            return Any
        elif part.isdigit() and typing.get_origin(node) in (typing.Union, types.UnionType) and any(
                typing.get_origin(a) in (tuple, list) for a in typing.get_args(node)):  # tuple[float, ...] | None
            args = typing.get_args(next(a for a in typing.get_args(node) if typing.get_origin(a) in (tuple, list)))
            node = args[0] if args else Any
        elif typing.get_origin(node) in (tuple, list) and part.isdigit():
            args = typing.get_args(node)
            node = args[0] if args else Any
        else:
            return _UNKNOWN
    return node


def _field_names(cls: type, dotted: str) -> list[str] | None:
    node = cls if not dotted else _field_type(cls, dotted)
    return [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else None


def _section_paths(cls: type, prefix: str = "") -> Iterator[str]:
    yield prefix
    for name, hint in _hints(_section_class(cls, prefix)).items():
        if dataclasses.is_dataclass(hint):
            yield from _section_paths(cls, f"{prefix}.{name}" if prefix else name)


def _section_class(cls: type, path: str) -> type:
    return cls if not path else _field_type(cls, path)


def _describe(hint: Any) -> str:
    """A type hint in words: ``tuple[int, ...]`` -> ``a list of integers``."""
    if hint is _UNKNOWN or hint is Any:
        return "a valid value"
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(kinds) + (" or null" if type(None) in args else "")
    if origin in (tuple, list):
        if len(args) == 2 and args[1] is Ellipsis or origin is list:
            return f"a list of {_plural(args[0]) if args else 'values'}"
        return f"a list of {len(args)} {_plural(args[0])}"
    if origin in (dict, Mapping):
        return "a mapping of keys to values"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if hint in names:
        return names[hint]
    if dataclasses.is_dataclass(hint):
        return f"a mapping with keys {', '.join(f.name for f in dataclasses.fields(hint))}"
    return f"a value of type {getattr(hint, '__name__', hint)}"


def _plural(hint: Any) -> str:
    return {int: "integers", float: "numbers", bool: "booleans", str: "strings"}.get(hint, "values")


# ---------------------------------------------------------------------------------------------------------------
# writing, reading back, comparing

def to_yaml(config: Any) -> str:
    """The config as YAML (tuples as lists), readable by :func:`load_config`."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(config))


def write_config(path: str | Path, config: Any, header: str = "") -> Path:
    """Write the resolved config as YAML, atomically."""
    from hwnas._io import write_text_atomic

    lines = "".join(f"# {line}\n" for line in header.splitlines())
    return write_text_atomic(path, lines + to_yaml(config))


def load_config(path: str | Path, base: T) -> T:
    """A config written by :func:`write_config` (or by hand) read back into ``base``'s dataclass."""
    return resolve(base, [file_layer(path)]).config


def changes(old: Any, new: Any, ignore: Iterable[str] = (), provenance: Mapping[str, str] | None = None
            ) -> list[str]:
    """``key old -> new (source)`` for every leaf that differs between two configs of one schema (dotted keys)."""
    from omegaconf import OmegaConf

    a = dict(_scalars(OmegaConf.to_container(OmegaConf.structured(old)), lists=False))
    b = dict(_scalars(OmegaConf.to_container(OmegaConf.structured(new)), lists=False))
    skip = tuple(ignore)
    out = []
    for key in sorted(set(a) | set(b)):
        if key in skip or key.startswith(tuple(f"{s}." for s in skip)):
            continue
        old_value, new_value = (list(v) if isinstance(v, tuple) else v for v in (a.get(key), b.get(key)))
        if old_value != new_value:
            by = f" ({_source(provenance, key)})" if provenance is not None else ""
            out.append(f"{key} {old_value!r} -> {new_value!r}{by}")
    return out


def resume_config(saved_path: Path, base: T, layers: Sequence[Layer], ignore: Iterable[str] = ()) -> T:
    """The config saved in a run folder; ``layers`` (what the user typed with ``--resume``) may not change it,
    except the keys in ``ignore`` (settings that do not change the result), which are applied."""
    sections = [f.name for f in dataclasses.fields(base) if dataclasses.is_dataclass(getattr(base, f.name))]
    missing = [name for name in sections if name not in load_yaml(saved_path)]
    if missing:  # a run writes every section; a file without them (emptied, cut short) would resume on defaults
        raise ConfigError(f"missing section(s) {', '.join(missing)}, config file {printable(str(saved_path))}, expected the "
                          "settings the run saved (restore the file, or start a new run in another --output)")
    saved = load_config(saved_path, base)
    asked = resolve(saved, layers)
    refuse_changes(saved, asked.config, saved_path, ignore, asked.provenance)
    return asked.config


def refuse_changes(saved: Any, asked: Any, where: Path, ignore: Iterable[str] = (),
                   provenance: Mapping[str, str] | None = None) -> None:
    """``--resume`` may not change the run: every differing key is named (old -> new)."""
    diff = changes(saved, asked, ignore, provenance)
    if diff:
        raise ConfigError(f"--resume would change the run: {'; '.join(diff)}, {where}, expected the saved settings "
                          "(drop those options, or start a new run in another --output)")


__all__ = ["CONFIG_NAME", "Layer", "Resolved", "changes", "file_layer", "flag_layer", "load_config", "load_yaml",
           "lookup", "override_layer", "refuse_changes", "resolve", "resume_config", "to_yaml", "write_config"]
