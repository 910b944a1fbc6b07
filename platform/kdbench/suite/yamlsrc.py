"""Safe YAML loading that remembers the line of every value and rejects duplicate keys.

PyYAML alone keeps the last of duplicate keys silently and reads `1e-4` as a string (YAML 1.1
needs a dot); both are fixed here. Values are built from `yaml.compose` nodes, which carry marks.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import Loc, SpecError

MAX_BYTES = 10 * 1024 * 1024  # a suite is a page of YAML; anything this large is a mistake


class _Loader(yaml.SafeLoader):
    pass


# YAML 1.2-style floats: 1e-4, 5E3, .5, 1.0e+3 (and the usual inf/nan spellings).
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_Loader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise SpecError(path, None, (), f"cannot read the file: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(path, None, (), f"file is larger than {MAX_BYTES // 2**20} MiB; not a suite")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SpecError(path, line, (), f"not UTF-8 text (byte 0x{raw[e.start]:02x})") from None


def load_yaml(path: str) -> tuple[Any, dict[Loc, int]]:
    """The document's data and a map from each value's location to its 1-based line."""
    text = read_text(path)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(path, line, (), f"not valid YAML: {e.problem or e.context}") from None
    if node is None:
        raise SpecError(path, 1, (), "the file is empty")
    lines: dict[Loc, int] = {}
    data = _build(node, (), lines, path, _Loader(""))
    if not isinstance(data, dict):
        raise SpecError(path, node.start_mark.line + 1, (), "a suite is a mapping of keys, not a "
                        f"{type(data).__name__}")
    return data, lines


def _build(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: str, loader: yaml.SafeLoader) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise SpecError(path, line, loc, f"keys must be text, got {key!r}")
            if key in out:
                raise SpecError(path, line, loc + (key,),
                                f"duplicate key (first given on line {lines[loc + (key,)]})")
            out[key] = _build(value_node, loc + (key,), lines, path, loader)
            lines[loc + (key,)] = line
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, loc + (i,), lines, path, loader) for i, v in enumerate(node.value)]
    try:
        return loader.construct_object(node)
    except yaml.constructor.ConstructorError as e:
        raise SpecError(path, lines[loc], loc, f"cannot read value: {e.problem}") from None
