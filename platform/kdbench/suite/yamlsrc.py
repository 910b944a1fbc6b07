"""Safe YAML loading that remembers the line of every value and rejects duplicate keys.

PyYAML alone keeps the last of duplicate keys silently and reads `1e-4` as a string (YAML 1.1
needs a dot); both are fixed here. Values are built from `yaml.compose` nodes, which carry marks.

Bounded (kdbench/suite/limits.py): the file's size, the nesting depth (while composing, before any
recursion limit), and the number of values built with aliases expanded at every use (a few hundred
bytes of nested aliases cannot build gigabytes); an alias inside its own anchor is a cycle, refused.
Merge keys (`<<: *base`, `<<: [*a, *b]`) are supported: the mapping's own keys win, then the first
merged mapping that has the key. `.inf` and `.nan` are refused: no suite value is infinite.
"""

from __future__ import annotations

import math
import os
import re
import stat
from typing import Any

import yaml

from .errors import Loc, SpecError
from .limits import MAX_BYTES, MAX_DEPTH, MAX_KEY_CHARS, MAX_NODES

_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"


class _Bound(Exception):
    def __init__(self, mark, loc: Loc, message: str) -> None:
        self.mark, self.loc, self.message = mark, loc, message


class _Loader(yaml.SafeLoader):
    """Composes at most MAX_NODES nodes, no deeper than MAX_DEPTH (PyYAML's composer recurses once per level)."""

    _nodes = 0
    _depth = 0  # the composer's recursion, complex keys (`? [[…]]`) included

    def _loc(self) -> Loc:
        """The path of the node being composed, up to any key it is part of."""
        path = self._path
        return tuple(path[: path.index(None)] if None in path else path)

    def compose_node(self, parent, index):
        # `index`: a list item's position, a mapping value's key node, None for a key: the path for messages
        if not hasattr(self, "_path"):
            self._path: list = []
        part = index if isinstance(index, int) else getattr(index, "value", None) if index is not None else None
        step = (index is None and parent is not None) or isinstance(part, int | str)  # None: a key's own nodes
        if step:
            self._path.append(part if not isinstance(part, str) else part[:MAX_KEY_CHARS])
        self._nodes += 1
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Bound(self.peek_event().start_mark, self._loc()[:8],
                             f"nested more than {MAX_DEPTH} levels deep")
            if self._nodes > MAX_NODES:
                raise _Bound(self.peek_event().start_mark, self._loc(),
                             f"the document holds more than {MAX_NODES:,} values")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if step:
                self._path.pop()


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
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe or device would block or never end
            raise SpecError(path, None, (), "not a regular file")
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise SpecError(path, None, (), f"cannot read the file: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(path, None, (), f"file is larger than {MAX_BYTES // 2**10:,} KiB; not a suite")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SpecError(path, line, (), f"not UTF-8 text (byte 0x{raw[e.start]:02x})") from None


def load_yaml(path: str) -> tuple[Any, dict[Loc, int]]:
    """The document's data and a map from each value's location to its 1-based line."""
    text = read_text(path)
    loader = None
    try:
        loader = _Loader(text)  # the reader refuses control characters here
        node = loader.get_single_node()
    except _Bound as e:
        raise SpecError(path, e.mark.line + 1, e.loc, e.message) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(path, line, (), f"not valid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:  # e.g. a control character (ReaderError): no problem_mark
        line = text[: getattr(e, "position", 0)].count("\n") + 1 if hasattr(e, "position") else None
        raise SpecError(path, line, (), f"not valid YAML: {str(e).splitlines()[0][:200]}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise SpecError(path, 1, (), "the file is empty")
    lines: dict[Loc, int] = {}
    data = _Builder(path, lines).build(node, ())
    if not isinstance(data, dict):
        raise SpecError(path, node.start_mark.line + 1, (), "a suite is a mapping of keys, not a "
                        f"{type(data).__name__}")
    return data, lines


class _Builder:
    """Python values from composed nodes: counted, depth-bounded, cycle-checked, merge keys applied."""

    def __init__(self, path: str, lines: dict[Loc, int]) -> None:
        self.path, self.lines = path, lines
        self.loader = _Loader("")
        self.nodes = 0
        self.active: set[int] = set()  # ids of the nodes being built (the path from the root)

    def fail(self, node: yaml.Node, loc: Loc, message: str) -> SpecError:
        return SpecError(self.path, node.start_mark.line + 1, loc, message)

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(node, loc, f"the document holds more than {MAX_NODES:,} values (aliases are "
                            "counted at every use)")
        self.lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, loc)
        if id(node) in self.active:
            raise self.fail(node, loc, "an alias refers to a value that contains it (a cycle)")
        if len(self.active) >= MAX_DEPTH:
            raise self.fail(node, loc, f"nested more than {MAX_DEPTH} levels deep")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(v, loc + (i,)) for i, v in enumerate(node.value)]
            return self.mapping(node, loc)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        try:
            value = self.loader.construct_object(node)
        except Exception as e:  # ConstructorError, or ValueError of a bad date, an int over 4300 digits…
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise self.fail(node, loc, f"cannot read value: {problem[:200]}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(node, loc, f"must be a finite number (got {node.value[:20]})")
        return value

    def key(self, node: yaml.Node, loc: Loc) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
            shown = node.value[:40] if isinstance(node, yaml.ScalarNode) else f"a {node.id}"
            raise self.fail(node, loc, f"keys must be text, got {shown!r} (quote a key that reads as a number, "
                            "true/false or null; tags are not allowed on keys)")
        if len(node.value) > MAX_KEY_CHARS:
            raise self.fail(node, loc, f"a key longer than {MAX_KEY_CHARS} characters")
        return node.value

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        own: dict[str, int] = {}  # key -> line, for keys written in this mapping
        merged: dict[str, Any] = {}
        merged_lines: dict[Loc, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self.merge(value_node, loc, merged, merged_lines)
                continue
            key = self.key(key_node, loc)
            line = key_node.start_mark.line + 1
            if key in own:
                raise SpecError(self.path, line, loc + (key,), f"duplicate key (first given on line {own[key]})")
            own[key] = line
            out[key] = self.build(value_node, loc + (key,))
            self.lines[loc + (key,)] = line
        if merged:
            n = len(loc)
            for sub, line in merged_lines.items():  # lines of the merged values this mapping did not override
                if len(sub) > n and sub[n] not in own:
                    self.lines[sub] = line
            out = {**{k: v for k, v in merged.items() if k not in own}, **out}
        return out

    def merge(self, value_node: yaml.Node, loc: Loc, merged: dict[str, Any], merged_lines: dict[Loc, int]) -> None:
        """`<<: *base` or `<<: [*a, *b]`: keys not yet merged, from each mapping in turn (the first wins)."""
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise self.fail(source, loc + ("<<",), "a merge key (<<) takes a mapping or a list of mappings, "
                                "e.g. `<<: *base`")
            saved, self.lines = self.lines, {}
            try:
                part = self.build(source, loc)
            finally:
                part_lines, self.lines = self.lines, saved
            n = len(loc)
            for sub, line in part_lines.items():
                if len(sub) > n and sub[n] not in merged:
                    merged_lines[sub] = line
            for k, v in part.items():
                merged.setdefault(k, v)
