"""Strict loading of YAML files into dataclasses.

Every error names the file, the place in it (e.g. "model 450"), the key and what was
expected, so a user can fix a bad file without reading code. Used for models.yaml and,
later, for /etc/archiver/*.yaml.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import ArchiverError


class ConfigError(ArchiverError, ValueError):
    """A configuration file that does not say what it must."""

    def __init__(self, file: str | Path, key: str, expected: str, *, got: Any = dataclasses.MISSING,
                 where: str = "", line: int | None = None):
        self.file, self.key, self.expected, self.where = str(file), key, expected, where
        place = f"{self.file}:{line}" if line else self.file
        parts = [place] + ([where] if where else []) + [f"key '{key}'" if key else "top level"]
        detail = f"expected {expected}"
        if got is not dataclasses.MISSING:
            detail += f", got {_show(got)}"
        super().__init__(": ".join(parts) + ": " + detail)


def _show(value: Any) -> str:
    if isinstance(value, list) and len(repr(value)) <= 120:
        return repr(value)
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return repr(value)


# libyaml's parser (PyYAML's C extension, part of Debian's python3-yaml) reads a file about
# ten times faster than PyYAML's own: every `archiver` command reads models.yaml (twice) and
# archiver.yaml, which cost it some 35 ms of CPU on the build host and seconds on a guest
# under TCG. Both parsers give nodes and errors with the same marks.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    file: str = "<yaml>"

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(self.file, str(key),
                                  f"each key once, but it is also given on line {seen[key]}",
                                  line=line)
            seen[key] = line
        return super().construct_mapping(node, deep)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file; duplicate keys and syntax errors become ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, "", f"a readable file ({exc.strerror})") from None
    loader = _UniqueKeyLoader(text)
    loader.file = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(path, "", f"valid YAML ({getattr(exc, 'problem', exc)})",
                          line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()


def field(doc: str, *, check: Callable[[Any], bool] | None = None, expected: str | None = None,
          secret: bool = False, **kwargs) -> Any:
    """A dataclass field with a description and an optional extra check on its value.
    A secret's value never appears in an error, only its length."""
    return dataclasses.field(metadata={"doc": doc, "check": check, "expected": expected,
                                       "secret": secret}, **kwargs)


def positive(value: Any) -> bool:
    return value > 0


def build(cls: type, data: Any, *, file: str | Path, where: str = "", prefix: str = "") -> Any:
    """Make a `cls` dataclass from a parsed mapping, refusing unknown, missing and mistyped keys."""
    if not isinstance(data, dict):
        raise ConfigError(file, prefix.rstrip("."), f"a mapping of {_names(cls)}", got=data,
                          where=where)
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(file, f"{prefix}{key}", f"one of the known keys {_names(cls)}",
                              got="an unknown key", where=where)
    values = {}
    for name, spec in known.items():
        key = f"{prefix}{name}"
        if name not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(file, key, _describe(hints[name], spec) + " (the key is missing)",
                                  where=where)
            continue
        values[name] = _convert(hints[name], spec, data[name], file=file, where=where, key=key)
    return cls(**values)


def _names(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls))


def _describe(hint: Any, spec: dataclasses.Field | None = None) -> str:
    if spec is not None and spec.metadata.get("expected"):
        return spec.metadata["expected"]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    if origin is list:
        return f"a list of {_describe(typing.get_args(hint)[0]).removeprefix('a ').removeprefix('an ')}s"
    if dataclasses.is_dataclass(hint):
        return f"a mapping of {_names(hint)}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "null"}.get(hint, str(hint))


def _convert(hint: Any, spec: dataclasses.Field | None, value: Any, *, file, where, key) -> Any:
    optional = _optional_inner(hint)
    if optional is not None:  # X | None: null, or whatever X accepts
        return None if value is None else _convert(optional, spec, value, file=file,
                                                    where=where, key=key)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, file=file, where=where, prefix=f"{key}.")
    if not _has_type(hint, value):
        hidden = spec is not None and spec.metadata.get("secret")
        raise ConfigError(file, key, _describe(hint, spec),
                          got=f"a {type(value).__name__}" if hidden else value, where=where)
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        value = [_convert(item, None, v, file=file, where=where, key=f"{key}[{i}]")
                 for i, v in enumerate(value)]
    check = spec.metadata.get("check") if spec is not None else None
    if check is not None and value is not None and not check(value):
        shown = f"{len(value)} characters" if spec.metadata.get("secret") else value
        raise ConfigError(file, key, _describe(hint, spec), got=shown, where=where)
    return float(value) if hint is float else value


def _optional_inner(hint: Any) -> Any:
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return None
    others = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return others[0] if len(others) == 1 and len(typing.get_args(hint)) == 2 else None


def _has_type(hint: Any, value: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(arg, value) for arg in typing.get_args(hint))
    if origin is list:
        return isinstance(value, list)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    return isinstance(value, hint)
