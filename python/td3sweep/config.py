"""Reading the run's config file (`TD3SWEEP_CONFIG`) without PyYAML: `load_config`.

td3-sweep applies a sweep's overrides to the user's own YAML and hands each run the resolved copy.
Most agents read it with `yaml.safe_load` and should keep doing so. This reader is for trainers
(and this package's examples) in environments without PyYAML, such as td3-sweep's own `.venv`. It
reads the part of YAML that config files use: block mappings and sequences (a sequence may sit at
its key's indentation, as YAML emitters write it), single-line flow collections (`[16, 32]`,
`{a: 1}`), comments, quoted strings and the YAML 1.2 core scalars (null, true/false, integers,
floats including `1e-5`, `.inf` and `.nan`). Anything else (anchors, aliases, tags, multi-line
strings or flows) is an error that names the file and line, never a silent misreading.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any, List, Optional, Tuple, Union

_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}


class ConfigError(ValueError):
    """A config file this reader cannot read; the message starts with `path:line:`."""


def load_config(path: Union[str, os.PathLike]) -> Any:
    """The YAML (or JSON) document at `path`, as dicts, lists and scalars."""
    with open(path, encoding="utf-8") as f:
        return parse_yaml(f.read(), os.fspath(path))


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parses YAML text (the subset in the module docs); `source` labels errors."""
    return _Parser(text, source).document()


class _Line:
    __slots__ = ("no", "indent", "text")

    def __init__(self, no: int, indent: int, text: str) -> None:
        self.no, self.indent, self.text = no, indent, text


def _strip_comment(s: str) -> str:
    """`s` without a trailing `# comment` (a `#` at the start or after a space, outside quotes)."""
    quote: Optional[str] = None
    i = 0
    while i < len(s):
        c = s[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'" and (i == 0 or s[i - 1] in " \t[{,:-"):
            quote = c
        elif c == "#" and (i == 0 or s[i - 1] in " \t"):
            return s[:i].rstrip()
        i += 1
    return s.rstrip()


def _split_key(s: str) -> Optional[Tuple[str, str]]:
    """(key, rest) when `s` is `key: rest` or `key:`; the colon outside quotes and brackets."""
    quote: Optional[str] = None
    depth = 0
    for i, c in enumerate(s):
        if quote:
            if c == quote:
                quote = None
        elif c in "\"'" and i == 0:
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == ":" and depth == 0 and (i + 1 == len(s) or s[i + 1] in " \t"):
            return s[:i].strip(), s[i + 1 :].strip()
    return None


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines: List[_Line] = []
        for no, raw in enumerate(text.splitlines(), start=1):
            body = raw.lstrip(" ")
            if body.startswith("\t"):
                self.fail(no, "a tab in the indentation (YAML indents with spaces)")
            body = _strip_comment(body)
            if not body or (not self.lines and body == "---"):
                continue
            if body in ("---", "..."):
                self.fail(no, "a second document (`---`/`...`) is not supported")
            self.lines.append(_Line(no, len(raw) - len(raw.lstrip(" ")), body))

    def fail(self, no: int, message: str) -> None:
        raise ConfigError(f"{self.source}:{no}: {message}")

    def document(self) -> Any:
        if not self.lines:
            return None
        value, i = self.block(0, self.lines[0].indent)
        if i < len(self.lines):
            self.fail(self.lines[i].no, "unexpected indentation")
        return value

    def block(self, i: int, indent: int) -> Tuple[Any, int]:
        line = self.lines[i]
        if line.text == "-" or line.text.startswith("- "):
            return self.sequence(i, indent)
        if _split_key(line.text) is not None:
            return self.mapping(i, indent)
        if i + 1 < len(self.lines) and self.lines[i + 1].indent >= indent:
            self.fail(line.no, "a multi-line plain scalar is not supported")
        return self.inline(line.text, line.no), i + 1

    def child(self, i: int, indent: int, seq_at_same_indent: bool) -> Tuple[Any, int]:
        """The value of a `key:` or `-` with nothing after it: the indented block below, if any."""
        if i < len(self.lines):
            nxt = self.lines[i]
            if nxt.indent > indent:
                return self.block(i, nxt.indent)
            if seq_at_same_indent and nxt.indent == indent and (
                nxt.text == "-" or nxt.text.startswith("- ")
            ):
                return self.sequence(i, indent)
        return None, i

    def mapping(self, i: int, indent: int) -> Tuple[dict, int]:
        out: dict = {}
        while i < len(self.lines) and self.lines[i].indent == indent:
            line = self.lines[i]
            kv = _split_key(line.text)
            if kv is None or line.text.startswith("- "):
                self.fail(line.no, f"expected `key: value` here, found {line.text!r}")
            key_text, rest = kv
            key = self.scalar(key_text, line.no) if key_text[:1] in "\"'" else key_text
            if not isinstance(key, str) or not key:
                self.fail(line.no, f"unsupported mapping key {key_text!r}")
            if key in out:
                self.fail(line.no, f"duplicate key `{key}`")
            if rest:
                out[key], i = self.inline(rest, line.no), i + 1
            else:
                out[key], i = self.child(i + 1, indent, seq_at_same_indent=True)
        if i < len(self.lines) and self.lines[i].indent > indent:
            self.fail(self.lines[i].no, "unexpected indentation")
        return out, i

    def sequence(self, i: int, indent: int) -> Tuple[list, int]:
        out: list = []
        while i < len(self.lines):
            line = self.lines[i]
            if line.indent != indent or not (line.text == "-" or line.text.startswith("- ")):
                break
            rest = line.text[1:].lstrip(" ")
            if not rest:
                value, i = self.child(i + 1, indent, seq_at_same_indent=False)
            elif rest.startswith("- ") or rest == "-" or (
                rest[0] not in "[{\"'" and _split_key(rest) is not None
            ):
                # A compact nested block (`- key: value` or `- - x`): read it as a block that
                # starts where `rest` starts on this line.
                offset = indent + len(line.text) - len(rest)
                self.lines[i] = _Line(line.no, offset, rest)
                value, i = self.block(i, offset)
            else:
                value, i = self.inline(rest, line.no), i + 1
            out.append(value)
        if i < len(self.lines) and self.lines[i].indent > indent:
            self.fail(self.lines[i].no, "unexpected indentation")
        return out, i

    def inline(self, s: str, no: int) -> Any:
        """A value written on one line: a flow collection or a scalar."""
        if s[0] in "&*!":
            self.fail(no, f"anchors, aliases and tags are not supported ({s!r})")
        if s[0] in "|>":
            self.fail(no, "multi-line strings (`|`, `>`) are not supported")
        if s[0] in "[{":
            value, end = self.flow(s, 0, no)
            if s[end:].strip():
                self.fail(no, f"unexpected {s[end:].strip()!r} after a flow collection")
            return value
        return self.scalar(s, no)

    def flow(self, s: str, pos: int, no: int) -> Tuple[Any, int]:
        """A flow collection or scalar starting at `s[pos]`; returns it and the end position."""
        while pos < len(s) and s[pos] == " ":
            pos += 1
        if pos >= len(s):
            self.fail(no, "a flow collection is not closed on its line (multi-line flows are not supported)")
        opener = s[pos]
        if opener in "[{":
            closer = "]" if opener == "[" else "}"
            items: list = []
            pairs: dict = {}
            pos += 1
            while True:
                while pos < len(s) and s[pos] == " ":
                    pos += 1
                if pos < len(s) and s[pos] == closer:
                    return (items if opener == "[" else pairs), pos + 1
                if opener == "{":
                    key, pos = self.flow_scalar(s, pos, no, stop=":,}")
                    if pos >= len(s) or s[pos] != ":":
                        self.fail(no, f"expected `:` after key {key!r} in {s!r}")
                    value, pos = self.flow(s, pos + 1, no)
                    pairs[str(key)] = value
                else:
                    value, pos = self.flow(s, pos, no)
                    items.append(value)
                while pos < len(s) and s[pos] == " ":
                    pos += 1
                if pos < len(s) and s[pos] == ",":
                    pos += 1
                elif pos >= len(s) or s[pos] != closer:
                    self.fail(no, f"a flow collection is not closed on its line: {s!r}")
        return self.flow_scalar(s, pos, no, stop=",]}")

    def flow_scalar(self, s: str, pos: int, no: int, stop: str) -> Tuple[Any, int]:
        while pos < len(s) and s[pos] == " ":
            pos += 1
        if pos < len(s) and s[pos] in "\"'":
            q = s[pos]
            end = pos + 1
            while end < len(s):
                if s[end] == "\\" and q == '"':
                    end += 2
                    continue
                if s[end] == q:
                    if q == "'" and s[end + 1 : end + 2] == "'":
                        end += 2
                        continue
                    break
                end += 1
            return self.scalar(s[pos : end + 1], no), end + 1
        end = pos
        while end < len(s) and s[end] not in stop:
            end += 1
        return self.scalar(s[pos:end].strip(), no), end

    def scalar(self, s: str, no: int) -> Any:
        if s[:1] == '"':
            if len(s) < 2 or not s.endswith('"'):
                self.fail(no, f"unterminated string {s!r}")
            try:
                return json.loads(s)
            except ValueError:
                self.fail(no, f"unsupported escape in {s!r}")
        if s[:1] == "'":
            if len(s) < 2 or not s.endswith("'"):
                self.fail(no, f"unterminated string {s!r}")
            return s[1:-1].replace("''", "'")
        if s in _NULLS:
            return None
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        if _INT.fullmatch(s):
            return int(s)
        if s.startswith(("0x", "0o")):
            try:
                return int(s, 0)
            except ValueError:
                return s
        if _FLOAT.fullmatch(s):
            return float(s)
        low = s.lstrip("+-")
        if low in (".inf", ".Inf", ".INF"):
            return -math.inf if s.startswith("-") else math.inf
        if s in (".nan", ".NaN", ".NAN"):
            return math.nan
        return s


def get(config: Any, dotted: str, default: Any = None) -> Any:
    """`config["a"]["b"]` for `"a.b"`, or `default` where a key is missing (or the value null)."""
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return default
        node = node[part]
    return node
