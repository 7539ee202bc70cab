"""Go's text/template, as docker's `--format` uses it: lexer, parser, executor, fmt and docker's functions.

`render(template, data)` parses and executes in one step; `parse(template)` returns a reusable
`Template`. Data is plain Python: dicts (Go maps: `.Key` looks a key up), lists/tuples (slices),
str, int, float, bool, None (nil), and objects (`.Field` reads an attribute; a callable attribute or
dict value is called, with the arguments given in the template, like a Go method).

Supported: text and actions with `{{- -}}` trimming, comments, fields and chains (`(index .A 0).B`),
variables (`$x := …`, `$x = …`, `$`), pipelines, parenthesised pipelines, `if`/`else if`/`else`,
`range` (over lists, dicts in key order, ints; `$i, $v :=`; `else`; `break`/`continue`),
`with`/`else with`/`else`, Go's builtins (and or not len index slice print printf println eq ne lt le
gt ge html urlquery call) and docker's (json join split lower upper title truncate pad).
Values print as Go's fmt does: `map[a:1 b:2]`, `[a b]`, `<nil>`, `<no value>` for a missing key,
floats in %v form (`1e+06`). `define`/`template`/`block` are not supported (docker never uses them).

Errors raise `TemplateError` with Go's texts: parse errors read
``template parsing error: template: :1: unclosed action``; execution errors read
``template: :1:2: executing "" at <.X>: map has no entry for key "X"``.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

from katadocker.errors import KatadockerError


class TemplateError(KatadockerError):
    """A template that does not parse, or fails while executing (docker exits 1, no daemon prefix)."""

    daemon = False


class _Missing:
    """Go's invalid reflect.Value: what a missing map key yields; prints as ``<no value>``."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()

# ---------------------------------------------------------------------------------------------------------
# Lexer
# ---------------------------------------------------------------------------------------------------------

TEXT, LEFT, RIGHT, SPACE, FIELD, VARIABLE, IDENT, KEYWORD, STRING, RAW, CHAR, NUMBER, BOOL, NIL, DOT, \
    DECLARE, ASSIGN, PIPE, LPAREN, RPAREN, PUNCT, EOF, ERROR = range(23)
_KEYWORDS = frozenset({"if", "else", "end", "range", "with", "break", "continue", "define", "template",
                       "block"})
_SPACE_CHARS = " \t\r\n"
_NUMBER_RE = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?|0[oObB][0-7_]+"
    r"|[0-9_]*\.?[0-9_]*(?:[eE][+-]?[0-9_]+)?)i?")


@dataclass(frozen=True)
class _Token:
    kind: int
    value: str
    pos: int
    line: int

    def describe(self) -> str:
        """Go's item.String(), used in "unexpected … in …" messages."""
        if self.kind == EOF:
            return "EOF"
        if self.kind == ERROR:
            return self.value
        if self.kind == KEYWORD:
            return f"<{self.value}>"
        if len(self.value) > 10:
            return go_quote(self.value[:10]) + "..."
        return go_quote(self.value)


class _Lexer:
    """Splits a template into tokens, as Go's text/template/parse lexer does (delimiters {{ }})."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.tokens: list[_Token] = []
        self.paren_depth = 0

    def run(self) -> list[_Token]:
        while self.pos <= len(self.text):
            if not self._lex_text():
                break
            if not self._lex_action():
                return self.tokens
        self._emit(EOF, "", len(self.text))
        return self.tokens

    def _line(self, pos: int) -> int:
        return 1 + self.text.count("\n", 0, pos)

    def _emit(self, kind: int, value: str, pos: int) -> None:
        self.tokens.append(_Token(kind, value, pos, self._line(pos)))

    def _error(self, message: str) -> None:
        self._emit(ERROR, message, self.pos)

    def _lex_text(self) -> bool:
        """Emit text up to the next "{{" (trimmed by a "{{- "); False at end of input."""
        start = self.pos
        left = self.text.find("{{", start)
        if left < 0:
            if start < len(self.text):
                self._emit(TEXT, self.text[start:], start)
            return False
        end = left
        if self._left_trim(left):
            end = len(self.text[start:left].rstrip(_SPACE_CHARS)) + start
        if end > start:
            self._emit(TEXT, self.text[start:end], start)
        self.pos = left
        return True

    def _left_trim(self, left: int) -> bool:
        rest = self.text[left + 2:left + 4]
        return len(rest) == 2 and rest[0] == "-" and rest[1] in _SPACE_CHARS

    def _right_delim_at(self, pos: int) -> tuple[bool, bool]:
        """(at a right delimiter, with a trim marker " -}}")."""
        if self.text.startswith("}}", pos):
            return True, False
        rest = self.text[pos:pos + 4]
        if len(rest) == 4 and rest[0] in _SPACE_CHARS and rest[1:] == "-}}":
            return True, True
        return False, False

    def _lex_action(self) -> bool:
        """Lex one action from its "{{" to its "}}"; False after emitting an error."""
        trim = self._left_trim(self.pos)
        self._emit(LEFT, "{{", self.pos)
        self.pos += 4 if trim else 2
        if self.text.startswith("/*", self.pos):
            return self._lex_comment()
        self.paren_depth = 0
        while True:
            at_right, trim_right = self._right_delim_at(self.pos)
            if at_right and self.paren_depth > 0:
                self._error("unclosed left paren")
                return False
            if at_right:
                self._close_action(trim_right)
                return True
            if self.pos >= len(self.text):
                self._error("unclosed action")
                return False
            if not self._lex_inside():
                return False

    def _close_action(self, trim_right: bool) -> None:
        size = 4 if trim_right else 2
        self._emit(RIGHT, "}}", self.pos + size - 2)
        self.pos += size
        if trim_right:
            rest = self.text[self.pos:]
            self.pos += len(rest) - len(rest.lstrip(_SPACE_CHARS))

    def _lex_comment(self) -> bool:
        end = self.text.find("*/", self.pos + 2)
        if end < 0:
            self._error("unclosed comment")
            return False
        self.pos = end + 2
        at_right, trim_right = self._right_delim_at(self.pos)
        if not at_right:
            self._error("comment ends before closing delimiter")
            return False
        self.tokens.pop()  # a comment produces no action
        self._close_action(trim_right)
        self.tokens.pop()
        return True

    def _lex_inside(self) -> bool:
        """Lex one token inside an action; False after emitting an error."""
        c = self.text[self.pos]
        start = self.pos
        if c in _SPACE_CHARS:
            while self.pos < len(self.text) and self.text[self.pos] in _SPACE_CHARS:
                if self._right_delim_at(self.pos)[1]:
                    break
                self.pos += 1
            self._emit(SPACE, self.text[start:self.pos], start)
            return True
        simple = {"=": ASSIGN, "|": PIPE, "(": LPAREN, ")": RPAREN}
        if c in simple:
            return self._lex_simple(simple[c])
        if c == ":":
            if not self.text.startswith(":=", self.pos):
                self._error("expected :=")
                return False
            self.pos += 2
            self._emit(DECLARE, ":=", start)
            return True
        if c == '"':
            return self._lex_quote('"', STRING, "unterminated quoted string")
        if c == "`":
            return self._lex_raw()
        if c == "'":
            return self._lex_quote("'", CHAR, "unterminated character constant")
        if c == "$":
            self.pos += 1
            return self._lex_word(VARIABLE, start)
        if c == "." and self.pos + 1 < len(self.text) and self.text[self.pos + 1].isdigit():
            return self._lex_number()
        if c == ".":
            self.pos += 1
            return self._lex_word(FIELD, start)
        if c in "+-" or c.isdigit():
            return self._lex_number()
        if c.isalpha() or c == "_":
            return self._lex_word(IDENT, start)
        if c.isprintable() and ord(c) < 128:
            self.pos += 1
            self._emit(PUNCT, c, start)
            return True
        self._error(f"unrecognized character in action: {go_unicode(c)}")
        return False

    def _lex_simple(self, kind: int) -> bool:
        if kind == LPAREN:
            self.paren_depth += 1
        elif kind == RPAREN:
            self.paren_depth -= 1
            if self.paren_depth < 0:
                self._error("unexpected right paren")
                return False
        self._emit(kind, self.text[self.pos], self.pos)
        self.pos += 1
        return True

    def _lex_word(self, kind: int, start: int) -> bool:
        """An identifier, keyword, field (.Name, or "." alone) or variable ($name, or "$" alone)."""
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] == "_"):
            self.pos += 1
        word = self.text[start:self.pos]
        if not self._at_terminator():
            self._error(f"bad character {go_unicode(self.text[self.pos])}")
            return False
        if kind == FIELD and word == ".":
            kind = DOT
        elif kind == IDENT:
            literal = {"true": BOOL, "false": BOOL, "nil": NIL}
            kind = literal.get(word, KEYWORD if word in _KEYWORDS else IDENT)
        self._emit(kind, word, start)
        return True

    def _at_terminator(self) -> bool:
        if self.pos >= len(self.text):
            return True
        c = self.text[self.pos]
        return c in _SPACE_CHARS or c in ".,|:()" or self._right_delim_at(self.pos)[0]

    def _lex_number(self) -> bool:
        m = _NUMBER_RE.match(self.text, self.pos)
        end = m.end() if m else self.pos
        if end == self.pos or (end < len(self.text) and (self.text[end].isalnum() or self.text[end] == "_")):
            self.pos = max(end, self.pos + 1)
            self._error(f"bad number syntax: {go_quote(self.text[m.start() if m else self.pos:self.pos])}")
            return False
        self._emit(NUMBER, self.text[self.pos:end], self.pos)
        self.pos = end
        return True

    def _lex_quote(self, quote: str, kind: int, unterminated: str) -> bool:
        i = self.pos + 1
        while i < len(self.text) and self.text[i] != quote:
            if self.text[i] == "\\":
                i += 1
            if i >= len(self.text) or self.text[i] == "\n":
                self._error(unterminated)
                return False
            i += 1
        if i >= len(self.text):
            self._error(unterminated)
            return False
        self._emit(kind, self.text[self.pos:i + 1], self.pos)
        self.pos = i + 1
        return True

    def _lex_raw(self) -> bool:
        end = self.text.find("`", self.pos + 1)
        if end < 0:
            self._error("unterminated raw quoted string")
            return False
        self._emit(RAW, self.text[self.pos:end + 1], self.pos)
        self.pos = end + 1
        return True


# ---------------------------------------------------------------------------------------------------------
# Parse tree
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Node:
    pos: int


@dataclass
class _Text(_Node):
    text: str


@dataclass
class _Field(_Node):
    idents: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


@dataclass
class _Variable(_Node):
    idents: list[str]  # idents[0] is the variable name ("$x" or "$")

    def __str__(self) -> str:
        return ".".join(self.idents)


@dataclass
class _Chain(_Node):
    node: _Node
    idents: list[str]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)
        return inner + "".join("." + i for i in self.idents)


@dataclass
class _Identifier(_Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass
class _Dot(_Node):
    def __str__(self) -> str:
        return "."


@dataclass
class _Nil(_Node):
    def __str__(self) -> str:
        return "nil"


@dataclass
class _Constant(_Node):
    """A literal: string, raw string, char, number or bool; `value` is its Python value."""

    text: str
    value: Any

    def __str__(self) -> str:
        return self.text


@dataclass
class _Command(_Node):
    args: list[_Node]

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, _Pipe) else str(a) for a in self.args)


@dataclass
class _Pipe(_Node):
    decl: list[str]
    is_assign: bool
    cmds: list[_Command] = field(default_factory=list)

    def __str__(self) -> str:
        head = (", ".join(self.decl) + (" = " if self.is_assign else " := ")) if self.decl else ""
        return head + " | ".join(str(c) for c in self.cmds)


@dataclass
class _Action(_Node):
    pipe: _Pipe



@dataclass
class _Control(_Node):
    """if / with / range: `body` runs when the pipeline's value is true (or per element); else `orelse`."""

    kind: str
    pipe: _Pipe
    body: list[_Node]
    orelse: list[_Node] | None

    def __str__(self) -> str:
        return f"{{{{{self.kind} {self.pipe}}}}}"


@dataclass
class _Break(_Node):
    kind: str  # "break" or "continue"


class _Parser:
    """Go's recursive-descent template parser, with its error texts."""

    def __init__(self, text: str, funcs: Mapping[str, Function]) -> None:
        self.tokens = _Lexer(text).run()
        self.i = 0
        self.funcs = funcs
        self.vars: list[str] = ["$"]
        self.range_depth = 0

    # token access --------------------------------------------------------------------------------------
    def next(self) -> _Token:
        token = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        if token.kind == ERROR:
            self.fail_at(token, token.value)
        return token

    def backup(self) -> None:
        self.i -= 1

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next_non_space(self) -> _Token:
        token = self.next()
        while token.kind == SPACE:
            token = self.next()
        return token

    def peek_non_space(self) -> _Token:
        token = self.next_non_space()
        self.backup()
        return token

    def fail_at(self, token: _Token, message: str) -> NoReturn:
        raise TemplateError(f"template parsing error: template: :{token.line}: {message}")

    def unexpected(self, token: _Token, context: str) -> NoReturn:
        self.fail_at(token, f"unexpected {token.describe()} in {context}")

    # grammar -------------------------------------------------------------------------------------------
    def parse(self) -> list[_Node]:
        nodes: list[_Node] = []
        while self.peek().kind != EOF:
            node = self.text_or_action()
            if isinstance(node, _Token):
                self.fail_at(node, f"unexpected {{{{{node.value}}}}}")
            nodes.append(node)
        return nodes

    def item_list(self) -> tuple[list[_Node], _Token]:
        """Nodes up to an {{end}} or {{else}}, returned with that keyword token."""
        nodes: list[_Node] = []
        while self.peek_non_space().kind != EOF:
            node = self.text_or_action()
            if isinstance(node, _Token):
                return nodes, node
            nodes.append(node)
        self.fail_at(self.peek(), "unexpected EOF")

    def text_or_action(self) -> _Node | _Token:
        token = self.next_non_space()
        if token.kind == TEXT:
            return _Text(token.pos, token.value)
        if token.kind == LEFT:
            return self.action()
        self.unexpected(token, "input")

    def action(self) -> _Node | _Token:
        """Returns a node, or the `end`/`else` keyword token that closes a control structure."""
        token = self.next_non_space()
        if token.kind == KEYWORD:
            if token.value in ("end", "else"):
                return self.end_or_else(token)
            if token.value in ("if", "with", "range"):
                return self.control(token)
            if token.value in ("break", "continue"):
                return self.break_control(token)
            self.fail_at(token, f"{{{{{token.value}}}}} is not supported")
        self.backup()
        return _Action(token.pos, self.pipeline("command", RIGHT))

    def end_or_else(self, token: _Token) -> _Token:
        if token.value == "else":
            following = self.peek_non_space()
            if following.kind == KEYWORD and following.value in ("if", "with"):
                return token  # "else if"/"else with": the keyword starts the nested control
        closing = self.next_non_space()
        if closing.kind != RIGHT:
            self.unexpected(closing, f"{token.value}")
        return token

    def break_control(self, token: _Token) -> _Node:
        closing = self.next_non_space()
        if closing.kind != RIGHT:
            self.unexpected(closing, f"{{{{{token.value}}}}}")
        if self.range_depth == 0:
            self.fail_at(token, f"{{{{{token.value}}}}} outside {{{{range}}}}")
        return _Break(token.pos, token.value)

    def control(self, token: _Token) -> _Control:
        saved_vars = len(self.vars)
        pipe = self.pipeline(token.value, RIGHT)
        if token.value == "range":
            self.range_depth += 1
        body, closing = self.item_list()
        if token.value == "range":
            self.range_depth -= 1
        orelse: list[_Node] | None = None
        if closing.value == "else":
            following = self.peek_non_space()
            if token.value in ("if", "with") and following.kind == KEYWORD and following.value == token.value:
                orelse = [self.control(self.next_non_space())]
            else:
                orelse, closing = self.item_list()
                if closing.value != "end":
                    self.fail_at(closing, "expected end; found {{else}}")
        del self.vars[saved_vars:]
        return _Control(token.pos, token.value, pipe, body, orelse)

    def pipeline(self, context: str, end: int) -> _Pipe:
        token = self.peek_non_space()
        pipe = _Pipe(token.pos, [], False)
        self.declarations(pipe, context)
        while True:
            token = self.next_non_space()
            if token.kind == end:
                self.check_pipeline(pipe, context, token)
                return pipe
            if token.kind in (BOOL, CHAR, DOT, FIELD, IDENT, NUMBER, NIL, RAW, STRING, VARIABLE, LPAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(token, context)

    def declarations(self, pipe: _Pipe, context: str) -> None:
        """Consume `$x :=`, `$x =` or (range only) `$i, $v :=` at the start of a pipeline."""
        start = self.i
        token = self.next_non_space()
        if token.kind != VARIABLE:
            self.i = start
            return
        after = self.next_non_space()
        if after.kind in (DECLARE, ASSIGN):
            pipe.is_assign = after.kind == ASSIGN
            pipe.decl.append(token.value)
            if not pipe.is_assign:
                self.vars.append(token.value)
            elif token.value not in self.vars:
                self.fail_at(token, f"undefined variable {go_quote(token.value)}")
            return
        if after.kind == PUNCT and after.value == "," and context == "range":
            second = self.next_non_space()
            declare = self.next_non_space()
            if second.kind != VARIABLE or declare.kind not in (DECLARE, ASSIGN):
                self.fail_at(second, "range can only initialize variables")
            pipe.decl += [token.value, second.value]
            pipe.is_assign = declare.kind == ASSIGN
            self.vars += [] if pipe.is_assign else [token.value, second.value]
            return
        self.i = start

    def check_pipeline(self, pipe: _Pipe, context: str, token: _Token) -> None:
        if not pipe.cmds:
            self.fail_at(token, f"missing value for {context}")
        for stage, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], (_Constant, _Dot, _Nil)):
                self.fail_at(token, f"non executable command in pipeline stage {stage}")

    def command(self) -> _Command:
        cmd = _Command(self.peek_non_space().pos, [])
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.kind == SPACE:
                continue
            if token.kind in (RIGHT, RPAREN):
                self.backup()
            elif token.kind != PIPE:
                self.unexpected(token, "operand")
            break
        if not cmd.args:
            self.fail_at(self.peek(), "empty command")
        return cmd

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None or self.peek().kind != FIELD:
            return node
        chain_pos = self.peek().pos
        idents = []
        while self.peek().kind == FIELD:
            idents.append(self.next().value[1:])
        if isinstance(node, (_Field, _Variable)):
            node.idents += idents
            return node
        if isinstance(node, (_Constant, _Nil, _Dot)):
            self.fail_at(self.tokens[self.i - 1], f"unexpected . after term {go_quote(str(node))}")
        return _Chain(chain_pos, node, idents)

    def term(self) -> _Node | None:
        token = self.next_non_space()
        kind = token.kind
        if kind == IDENT:
            if token.value not in self.funcs:
                self.fail_at(token, f"function {go_quote(token.value)} not defined")
            return _Identifier(token.pos, token.value)
        if kind == DOT:
            return _Dot(token.pos)
        if kind == NIL:
            return _Nil(token.pos)
        if kind == VARIABLE:
            if token.value not in self.vars:
                self.fail_at(token, f"undefined variable {go_quote(token.value)}")
            return _Variable(token.pos, [token.value])
        if kind == FIELD:
            return _Field(token.pos, [token.value[1:]])
        if kind == BOOL:
            return _Constant(token.pos, token.value, token.value == "true")
        if kind in (CHAR, NUMBER):
            return _Constant(token.pos, token.value, self.number(token))
        if kind in (STRING, RAW):
            return _Constant(token.pos, token.value, self.string(token))
        if kind == LPAREN:
            return self.pipeline("parenthesized pipeline", RPAREN)
        self.backup()
        return None

    def number(self, token: _Token) -> int | float:
        try:
            return parse_number(token.value, token.kind == CHAR)
        except ValueError:
            self.fail_at(token, f"illegal number syntax: {go_quote(token.value)}")

    def string(self, token: _Token) -> str:
        if token.kind == RAW:
            return token.value[1:-1]
        try:
            return go_unquote(token.value[1:-1])
        except ValueError:
            self.fail_at(token, f"invalid syntax: {token.value}")


def parse_number(text: str, is_char: bool = False) -> int | float:
    """A Go number literal (or 'c' character constant) as int, or float when it has . e E."""
    if is_char:
        value = go_unquote(text[1:-1])
        if len(value) != 1:
            raise ValueError(text)
        return ord(value)
    clean = text.replace("_", "")
    if clean.endswith("i"):
        raise ValueError(text)
    if clean.lower().lstrip("+-").startswith("0x"):
        return int(clean, 16) if "." not in clean and "p" not in clean.lower() else float.fromhex(clean)
    if any(c in clean for c in ".eE"):
        return float(clean)
    if re.fullmatch(r"[+-]?0[0-7]+", clean):
        return int(clean, 8)
    return int(clean, 0)


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
            '"': '"', "'": "'"}


def go_unquote(body: str) -> str:
    """Interpret Go's escapes in the body of a double-quoted string; raises ValueError on bad ones."""
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise ValueError(body)
        e = body[i]
        if e in _ESCAPES:
            out += _ESCAPES[e].encode()
            i += 1
        elif e in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 1:i + 1 + size]
            if len(digits) != size or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError(body)
            out += bytes([int(digits, 16)]) if e == "x" else chr(int(digits, 16)).encode("utf-8", "replace")
            i += 1 + size
        elif e in "01234567":
            digits = body[i:i + 3]
            if len(digits) != 3 or not all(d in "01234567" for d in digits) or int(digits, 8) > 255:
                raise ValueError(body)
            out.append(int(digits, 8))
            i += 3
        else:
            raise ValueError(body)
    return out.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------------
# Values: Go type names, truth, printing
# ---------------------------------------------------------------------------------------------------------


def go_type(v: Any) -> str:
    """The Go type name a Python value stands for, as shown in Go's error texts and %T."""
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    return type(v).__name__


def truth(v: Any) -> bool:
    """Go's template truth: false, 0, "", nil, empty list/map and missing are false; objects true."""
    if v is None or v is MISSING:
        return False
    if isinstance(v, (bool, int, float, str, Mapping, list, tuple)):
        return bool(v)
    return True


def format_value(v: Any) -> str:
    """Go's fmt %v: `[a b]`, `map[a:1]`, `<nil>`, `true`, floats in %g shortest form."""
    if v is MISSING:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float_g(v)
    if isinstance(v, str):
        return v
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{format_value(k)}:{format_value(x)}" for k, x in sorted_items(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(format_value(x) for x in v) + "]"
    if isinstance(v, bytes):
        return "[" + " ".join(str(b) for b in v) + "]"
    if dataclasses.is_dataclass(v) and type(v).__str__ is object.__str__:
        return "{" + " ".join(format_value(getattr(v, f.name)) for f in dataclasses.fields(v)) + "}"
    return str(v)


def sorted_items(m: Mapping) -> list[tuple[Any, Any]]:
    """A map's items in Go's printing order: keys sorted (numbers numerically, else as strings)."""
    try:
        return sorted(m.items())
    except TypeError:
        return sorted(m.items(), key=lambda kv: str(kv[0]))


def format_float_g(f: float, upper: bool = False) -> str:
    """Go's %v of a float64 (strconv 'g', shortest): exponent form when exp < -4 or exp >= 6 (``1e+06``)."""
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if math.isnan(f):
        return "NaN"
    digits, exp = _shortest_digits(f)
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    if exp < -4 or exp >= 6:
        return sign + _e_form(digits, exp, upper)
    return sign + _f_form(digits, exp)


def _shortest_digits(f: float) -> tuple[str, int]:
    """The shortest round-trip decimal digits of |f| and its decimal exponent (d.ddd × 10^exp)."""
    if f == 0:
        return "0", 0
    t = Decimal(repr(abs(f))).normalize().as_tuple()
    digits = "".join(map(str, t.digits))
    return digits, len(digits) + int(t.exponent) - 1


def _e_form(digits: str, exp: int, upper: bool) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}{'E' if upper else 'e'}{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _f_form(digits: str, exp: int) -> str:
    if exp < 0:
        return "0." + "0" * (-exp - 1) + digits
    if exp + 1 >= len(digits):
        return digits + "0" * (exp + 1 - len(digits))
    return digits[:exp + 1] + "." + digits[exp + 1:]


def go_quote(s: str) -> str:
    """Go's strconv.Quote: double quotes, Go escapes, non-printable runes escaped."""
    out = ['"']
    for c in s:
        code = ord(c)
        if c in '"\\':
            out.append("\\" + c)
        elif c in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(c)])
        elif c.isprintable() or c == " ":
            out.append(c)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_unicode(c: str) -> str:
    """Go's %#U: ``U+0023 '#'``."""
    return f"U+{ord(c):04X} '{c}'" if c.isprintable() else f"U+{ord(c):04X}"


# ---------------------------------------------------------------------------------------------------------
# fmt: Sprint, Sprintln, Sprintf
# ---------------------------------------------------------------------------------------------------------


def sprint(*args: Any) -> str:
    """Go's fmt.Sprint: a space between operands when neither side is a string."""
    out = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(format_value(a))
    return "".join(out)


def sprintln(*args: Any) -> str:
    """Go's fmt.Sprintln: operands separated by spaces, then a newline."""
    return " ".join(format_value(a) for a in args) + "\n"


_VERB_RE = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.?)", re.S)


def sprintf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the verbs templates use: v s d q t f F e E g G x X o b c U T %.

    Wrong types print as Go does (``%!d(string=hi)``), missing operands as ``%!d(MISSING)``,
    extra ones as ``%!(EXTRA int=1)``.
    """
    out: list[str] = []
    queue = list(args)
    used = 0
    pos = 0
    for m in _VERB_RE.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if not verb:
            out.append("%!(NOVERB)")
            continue
        if width == "*":
            width, used = (str(queue[used]) if used < len(queue) else "", used + 1)
        if prec == "*":
            prec, used = (str(queue[used]) if used < len(queue) else "", used + 1)
        if used >= len(queue):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = queue[used]
        used += 1
        spec = _Spec(flags, int(width) if width else None, int(prec or 0) if prec is not None else None, verb)
        out.append(spec.pad(_format_arg(arg, spec), arg))
    out.append(fmt[pos:])
    if used < len(queue):
        extra = ", ".join(f"{go_type(a)}={format_value(a)}" for a in queue[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


@dataclass(frozen=True)
class _Spec:
    flags: str
    width: int | None
    prec: int | None
    verb: str

    def pad(self, text: str, arg: Any) -> str:
        if self.width is None or len(text) >= self.width:
            return text
        fill = self.width - len(text)
        if "-" in self.flags:
            return text + " " * fill
        numeric = isinstance(arg, (int, float)) and not isinstance(arg, bool)
        if "0" in self.flags:
            sign = text[0] if numeric and text[:1] in "+- " else ""
            return sign + "0" * fill + text[len(sign):]
        return " " * fill + text


def _bad_verb(arg: Any, verb: str) -> str:
    if arg is None or arg is MISSING:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type(arg)}={format_value(arg)})"


def _format_arg(arg: Any, spec: _Spec) -> str:
    """Format one operand under `spec` (width is applied by the caller)."""
    verb = spec.verb
    if verb == "T":
        return go_type(arg)
    if verb == "v" and not isinstance(arg, (float, list, tuple, Mapping)):
        return _plus_sign(format_value(None if arg is MISSING else arg), arg, spec)
    if isinstance(arg, bool):
        return ("true" if arg else "false") if verb == "t" else _bad_verb(arg, verb)
    if isinstance(arg, int):
        return _format_int(arg, spec)
    if isinstance(arg, float):
        return _format_float(arg, spec)
    if isinstance(arg, str):
        return _format_str(arg, spec)
    if isinstance(arg, (list, tuple)):
        return "[" + " ".join(_format_arg(x, spec) for x in arg) + "]"
    if isinstance(arg, Mapping):
        pairs = (f"{_format_arg(k, spec)}:{_format_arg(x, spec)}" for k, x in sorted_items(arg))
        return "map[" + " ".join(pairs) + "]"
    if verb == "s" and arg is not None and arg is not MISSING:
        return format_value(arg)
    return _bad_verb(arg, verb)


def _plus_sign(text: str, arg: Any, spec: _Spec) -> str:
    numeric = isinstance(arg, (int, float)) and not isinstance(arg, bool)
    if numeric and not text.startswith("-"):
        if "+" in spec.flags:
            return "+" + text
        if " " in spec.flags:
            return " " + text
    return text


def _format_int(n: int, spec: _Spec) -> str:
    verb = spec.verb
    if verb == "c":
        return chr(n)
    if verb == "q":
        return "'" + go_quote(chr(n))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'"
    if verb == "U":
        return f"U+{n:04X}"
    bases = {"d": "d", "v": "d", "x": "x", "X": "X", "o": "o", "b": "b", "O": "o"}
    if verb not in bases:
        return _bad_verb(n, verb)
    digits = format(abs(n), bases[verb])
    if spec.prec is not None:
        digits = digits.zfill(spec.prec)
    if "#" in spec.flags and verb in "xX":
        digits = ("0x" if verb == "x" else "0X") + digits
    if verb == "O" or ("#" in spec.flags and verb == "o"):
        digits = ("0o" if verb == "O" else "0") + digits
    return _plus_sign(("-" if n < 0 else "") + digits, n, spec)


def _format_float(f: float, spec: _Spec) -> str:
    verb = spec.verb
    if verb in "vgG" and spec.prec is None:
        text = format_float_g(f, upper=verb == "G")
    elif verb in "eEfFgG":
        prec = 6 if spec.prec is None else spec.prec
        text = "%.*{}".format(verb if verb != "F" else "f") % (prec, f)
        text = text.replace("inf", "Inf").replace("nan", "NaN")
        if math.isinf(f) and f > 0:
            text = "+Inf"
    else:
        return _bad_verb(f, verb)
    return _plus_sign(text, f, spec)


def _format_str(s: str, spec: _Spec) -> str:
    verb = spec.verb
    if spec.prec is not None and verb in "sqv":
        s = s[:spec.prec]
    if verb in "sv":
        return s
    if verb == "q":
        return "`" + s + "`" if "#" in spec.flags and "`" not in s else go_quote(s)
    if verb in "xX":
        text = s.encode().hex()
        return text.upper() if verb == "X" else text
    return _bad_verb(s, verb)


# ---------------------------------------------------------------------------------------------------------
# JSON as Go's encoding/json writes it
# ---------------------------------------------------------------------------------------------------------


def go_json(v: Any, *, escape_html: bool = False) -> str:
    """encoding/json Marshal of a Python value, compact; HTML characters escaped only when asked.

    Dicts keep their order (build them in the order docker emits); floats print as Go does
    (``1e+21``, ``1000000``); dataclasses marshal their fields (a ``json`` metadata entry acting as Go's
    struct tag); other objects their public attributes.
    """
    if v is None or v is MISSING:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, str):
        return _json_string(v, escape_html)
    if isinstance(v, Mapping):
        return "{" + ",".join(f"{_json_string(str(k), escape_html)}:{go_json(x, escape_html=escape_html)}"
                              for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(go_json(x, escape_html=escape_html) for x in v) + "]"
    if dataclasses.is_dataclass(v):
        return go_json(_tagged_fields(v), escape_html=escape_html)
    return go_json({k: x for k, x in vars(v).items() if not k.startswith("_")}, escape_html=escape_html)


def _tagged_fields(v: Any) -> dict[str, Any]:
    """A dataclass's fields as encoding/json sees a struct: a ``json`` metadata entry is the Go
    struct tag (``"name,omitempty"``; ``"-"`` skips the field), else the field's own name."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(v):
        name, _, options = f.metadata.get("json", f.name).partition(",")
        value = getattr(v, f.name)
        if name == "-" or ("omitempty" in options.split(",") and value in ("", 0, False, None, [], {})):
            continue
        out[name or f.name] = value
    return out


def _json_float(f: float) -> str:
    if math.isinf(f) or math.isnan(f):
        raise ValueError(f"json: unsupported value: {format_float_g(f)}")
    digits, exp = _shortest_digits(f)
    sign = "-" if f < 0 else ""
    if f != 0 and (exp < -6 or exp >= 21):
        return sign + re.sub(r"e-0(\d)$", r"e-\1", _e_form(digits, exp, False))
    return sign + _f_form(digits, exp)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _json_string(s: str, escape_html: bool) -> str:
    out = ['"']
    for c in s:
        if c in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[c])
        elif ord(c) < 0x20 or c in "\u2028\u2029" or (escape_html and c in "<>&"):
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Function:
    """A template function: `params` are the kinds of its fixed arguments ("str", "int" or "any"),
    `variadic` the kind of any further ones (None: exactly len(params) arguments)."""

    fn: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: str | None = None


def _index(item: Any, *indexes: Any) -> Any:
    """Go's index: item[i][j]…; a missing map key gives the missing value (prints ``<no value>``)."""
    for i in indexes:
        item = _index_one(item, i)
    return item


def _index_one(item: Any, i: Any) -> Any:
    if item is None or item is MISSING:
        raise _CallError("index of untyped nil")
    if isinstance(item, Mapping):
        return item.get(i, MISSING)
    if isinstance(item, (list, tuple, str)):
        if not isinstance(i, int) or isinstance(i, bool):
            raise _CallError(f"cannot index slice/array with type {go_type(i)}")
        if not 0 <= i < len(item):
            raise _CallError(f"index out of range: {i}")
        return item.encode()[i] if isinstance(item, str) else item[i]
    raise _CallError(f"can't index item of type {go_type(item)}")


def _slice(item: Any, *indexes: int) -> Any:
    """Go's slice: item[lo:hi] with up to two indexes."""
    if not isinstance(item, (list, tuple, str)):
        raise _CallError(f"can't slice item of type {go_type(item)}")
    if len(indexes) > 2:
        raise _CallError(f"too many slice indexes: {len(indexes)}")
    lo = indexes[0] if indexes else 0
    hi = indexes[1] if len(indexes) > 1 else len(item)
    for bound in (lo, hi):
        if not 0 <= bound <= len(item):
            raise _CallError(f"index out of range: {bound}")
    if lo > hi:
        raise _CallError(f"invalid slice index: {lo} > {hi}")
    return item[lo:hi]


def _len(item: Any) -> int:
    if isinstance(item, (str, list, tuple, Mapping)):
        return len(item.encode()) if isinstance(item, str) else len(item)
    raise _CallError(f"len of type {go_type(item)}")


def _basic_kind(v: Any) -> str:
    """The kind Go's comparison functions see: bool, int, float, string, nil, container or other."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (Mapping, list, tuple)):
        return "container"
    return "nil" if v is None or v is MISSING else "other"


def _eq(a: Any, *others: Any) -> bool:
    """Go's eq: a == b, or a == any of several; nil equals only nil; kinds must agree."""
    if not others:
        raise _CallError("missing argument for comparison")
    ka = _basic_kind(a)
    for b in others:
        kb = _basic_kind(b)
        if ka != kb:
            if "nil" in (ka, kb):
                continue
            raise _CallError("incompatible types for comparison")
        if ka == "container":
            raise _CallError(f"non-comparable type {format_value(b)}: {go_type(b)}")
        if a == b or ka == "nil":
            return True
    return False


def _ordered(a: Any, b: Any) -> None:
    """Go's lt/le precondition: both int, both float or both string."""
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        raise _CallError("invalid type for comparison")
    if ka != kb:
        raise _CallError("incompatible types for comparison")


def _lt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return a < b


def _le(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return a <= b


def _join(elems: Any, sep: str) -> str:
    """docker's join: slices joined with fmt.Sprint of each item; maps: their values, sorted."""
    if isinstance(elems, Mapping):
        return sep.join(sorted(sprint(x) for x in elems.values()))
    if isinstance(elems, (list, tuple)):
        return sep.join(sprint(x) for x in elems)
    raise _CallError(f"expected slice, got {go_type(elems)}")


def _split(s: str, sep: str) -> list[str]:
    return list(s) if sep == "" else s.split(sep)


def _title(s: str) -> str:
    """cases.Title(language.Und, cases.NoLower): upper-case the first letter of each word."""
    return re.sub(r"(?<![\w'’])([^\W\d_])", lambda m: m.group(1).upper(), s)


def _truncate(s: str, n: int) -> str:
    """docker's truncate: the first n bytes when s is at least n bytes long."""
    raw = s.encode()
    return s if len(raw) < n else raw[:n].decode("utf-8", "ignore")


def _pad(s: str, prefix: int, suffix: int) -> str:
    return s if s == "" else " " * prefix + s + " " * suffix


def _call(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise _CallError(f"non-function of type {go_type(fn)}")
    return fn(*args)


def _identity(s: Any, *_: Any) -> Any:
    return s


BUILTINS: dict[str, Function] = {
    # and/or are evaluated lazily by the executor (_State.eval_and_or); `fn` is never called.
    "and": Function(_identity, ("any",), "any"),
    "or": Function(_identity, ("any",), "any"),
    "not": Function(lambda a: not truth(a), ("any",)),
    "len": Function(_len, ("any",)),
    "index": Function(_index, ("any",), "any"),
    "slice": Function(_slice, ("any",), "int"),
    "print": Function(sprint, (), "any"),
    "println": Function(sprintln, (), "any"),
    "printf": Function(sprintf, ("str",), "any"),
    "eq": Function(_eq, ("any",), "any"),
    "ne": Function(lambda a, b: not _eq(a, b), ("any", "any")),
    "lt": Function(_lt, ("any", "any")),
    "le": Function(_le, ("any", "any")),
    "gt": Function(lambda a, b: not _le(a, b), ("any", "any")),
    "ge": Function(lambda a, b: not _lt(a, b), ("any", "any")),
    "html": Function(lambda *a: html.escape(sprint(*a)).replace("&#x27;", "&#39;").replace("&quot;", "&#34;"),
                     (), "any"),
    "urlquery": Function(lambda *a: urllib.parse.quote_plus(sprint(*a)), (), "any"),
    "call": Function(_call, ("any",), "any"),
    # docker's additions (cli/templates/templates.go)
    "json": Function(lambda v: go_json(v), ("any",)),
    "join": Function(_join, ("any", "str")),
    "split": Function(_split, ("str", "str")),
    "lower": Function(str.lower, ("str",)),
    "upper": Function(str.upper, ("str",)),
    "title": Function(_title, ("str",)),
    "truncate": Function(_truncate, ("str", "int")),
    "pad": Function(_pad, ("str", "int", "int")),
}

#: docker's HeaderFunctions: in a table header these leave their first argument unchanged.
HEADER_FUNCS: dict[str, Function] = {
    "json": Function(_identity, ("str",)),
    "split": Function(_identity, ("str", "str")),
    "join": Function(_identity, ("str", "str")),
    "title": Function(_identity, ("str",)),
    "lower": Function(_identity, ("str",)),
    "upper": Function(_identity, ("str",)),
    "truncate": Function(_identity, ("str", "int")),
}


class _CallError(Exception):
    """Raised inside a template function; reported as ``error calling <name>: <message>``."""


# ---------------------------------------------------------------------------------------------------------
# Executor
# ---------------------------------------------------------------------------------------------------------


class _BreakLoop(Exception):
    pass


class _ContinueLoop(Exception):
    pass


class _State:
    """One execution: output, variable stack, the node being evaluated (for error context)."""

    def __init__(self, template: Template, data: Any, missing_key_error: bool) -> None:
        self.template = template
        self.out: list[str] = []
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.node: _Node | None = None
        self.missing_key_error = missing_key_error

    def error(self, message: str) -> TemplateError:
        if self.node is None:
            return TemplateError(f'template: : {message}')
        text = self.template.text
        pos = self.node.pos
        newline = text.rfind("\n", 0, pos)
        col = pos if newline < 0 else pos - newline - 1
        line = 1 + text.count("\n", 0, pos)
        return TemplateError(f'template: :{line}:{col}: executing "" at <{self.node}>: {message}')

    def at(self, node: _Node) -> None:
        self.node = node

    # walking -------------------------------------------------------------------------------------------
    def walk(self, nodes: Sequence[_Node], dot: Any) -> None:
        for node in nodes:
            self.walk_node(node, dot)

    def walk_node(self, node: _Node, dot: Any) -> None:
        if isinstance(node, _Text):
            self.out.append(node.text)
        elif isinstance(node, _Action):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.out.append(format_value(MISSING if value is None else value))
        elif isinstance(node, _Control):
            self.walk_control(node, dot)
        elif isinstance(node, _Break):
            raise _BreakLoop() if node.kind == "break" else _ContinueLoop()

    def walk_control(self, node: _Control, dot: Any) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.walk_range(node, dot)
                return
            value = self.eval_pipeline(dot, node.pipe)
            if truth(value):
                self.walk(node.body, value if node.kind == "with" else dot)
            elif node.orelse is not None:
                self.walk(node.orelse, dot)
        finally:
            del self.vars[mark:]

    def walk_range(self, node: _Control, dot: Any) -> None:
        self.at(node)
        value = self.eval_pipeline(dot, node.pipe)
        del self.vars[len(self.vars) - len(node.pipe.decl):]
        items = self.range_items(node, value)
        if not items:
            if node.orelse is not None:
                self.walk(node.orelse, dot)
            return
        for key, elem in items:
            mark = len(self.vars)
            self.bind_range_vars(node.pipe, key, elem)
            try:
                self.walk(node.body, elem)
            except _BreakLoop:
                break
            except _ContinueLoop:
                continue
            finally:
                del self.vars[mark:]

    def range_items(self, node: _Control, value: Any) -> list[tuple[Any, Any]]:
        if value is None or value is MISSING:
            return []
        if isinstance(value, Mapping):
            return sorted_items(value)
        if isinstance(value, (list, tuple)):
            return list(enumerate(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return [(i, i) for i in range(value)]
        self.at(node)
        raise self.error(f"range can't iterate over {format_value(value)}")

    def bind_range_vars(self, pipe: _Pipe, key: Any, elem: Any) -> None:
        names = pipe.decl
        values = [elem] if len(names) == 1 else [key, elem]
        for name, v in zip(names, values, strict=False):
            if pipe.is_assign:
                self.set_var(name, v)
            else:
                self.vars.append((name, v))

    # pipelines and commands ----------------------------------------------------------------------------
    def eval_pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise self.error(f"undefined variable: {name}")

    def var(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise self.error(f"undefined variable: {name}")

    def eval_command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        args = cmd.args[1:]
        if isinstance(first, _Field):
            return self.eval_field_chain(dot, dot, first, first.idents, args, final)
        if isinstance(first, _Chain):
            return self.eval_chain(dot, first, args, final)
        if isinstance(first, _Identifier):
            return self.eval_function(dot, first, cmd, args, final)
        if isinstance(first, _Variable):
            return self.eval_variable(dot, first, args, final)
        self.at(first)
        if args or final is not _NO_FINAL:
            raise self.error(f"can't give argument to non-function {first}")
        if isinstance(first, _Pipe):
            return self.eval_pipeline(dot, first)
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _Nil):
            raise self.error("nil is not a command")
        assert isinstance(first, _Constant)
        return first.value

    def eval_arg(self, dot: Any, node: _Node) -> Any:
        self.at(node)
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Nil):
            return None
        if isinstance(node, _Constant):
            return node.value
        if isinstance(node, _Field):
            return self.eval_field_chain(dot, dot, node, node.idents, [], _NO_FINAL)
        if isinstance(node, _Variable):
            return self.eval_variable(dot, node, [], _NO_FINAL)
        if isinstance(node, _Pipe):
            return self.eval_pipeline(dot, node)
        if isinstance(node, _Chain):
            return self.eval_chain(dot, node, [], _NO_FINAL)
        assert isinstance(node, _Identifier)
        return self.eval_function(dot, node, _Command(node.pos, [node]), [], _NO_FINAL)

    def eval_variable(self, dot: Any, node: _Variable, args: list[_Node], final: Any) -> Any:
        self.at(node)
        value = self.var(node.idents[0])
        if len(node.idents) == 1:
            if args or final is not _NO_FINAL:
                raise self.error(f"can't give argument to non-function {node}")
            return value
        return self.eval_field_chain(dot, value, node, node.idents[1:], args, final)

    def eval_chain(self, dot: Any, node: _Chain, args: list[_Node], final: Any) -> Any:
        self.at(node)
        receiver = self.eval_arg(dot, node.node)
        return self.eval_field_chain(dot, receiver, node, node.idents, args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: _Node, idents: list[str], args: list[_Node],
                         final: Any) -> Any:
        self.at(node)
        for ident in idents[:-1]:
            receiver = self.eval_field(dot, ident, node, [], _NO_FINAL, receiver)
        return self.eval_field(dot, idents[-1], node, args, final, receiver)

    def eval_field(self, dot: Any, name: str, node: _Node, args: list[_Node], final: Any,
                   receiver: Any) -> Any:
        """Go's evalField: a map key, an attribute, or a method (callable) called with `args`."""
        has_args = bool(args) or final is not _NO_FINAL
        if receiver is MISSING:
            if self.missing_key_error:
                raise self.error(f"nil data; no entry for key {go_quote(name)}")
            return MISSING
        if receiver is None:
            raise self.error(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, Mapping):
            if name in receiver:
                return self.field_value(dot, receiver[name], name, node, args, final, has_args)
            if has_args:
                raise self.error(f"{name} is not a method but has arguments")
            if self.missing_key_error:
                raise self.error(f"map has no entry for key {go_quote(name)}")
            return MISSING
        if not isinstance(receiver, (str, int, float, list, tuple)) and not name.startswith("_") \
                and hasattr(receiver, name):
            return self.field_value(dot, getattr(receiver, name), name, node, args, final, has_args)
        raise self.error(f"can't evaluate field {name} in type {go_type(receiver)}")

    def field_value(self, dot: Any, value: Any, name: str, node: _Node, args: list[_Node], final: Any,
                    has_args: bool) -> Any:
        if callable(value) and not isinstance(value, type):
            argv = [self.eval_arg(dot, a) for a in args] + ([] if final is _NO_FINAL else [final])
            self.at(node)
            try:
                return value(*[None if a is MISSING else a for a in argv])
            except (TypeError, ValueError, _CallError) as e:
                raise self.error(f"error calling {name}: {e}") from None
        if has_args:
            raise self.error(f"{name} is not a method but has arguments")
        return value

    def eval_function(self, dot: Any, ident: _Identifier, cmd: _Command, args: list[_Node],
                      final: Any) -> Any:
        self.at(ident)
        func = self.template.funcs[ident.name]
        nargs = len(args) + (0 if final is _NO_FINAL else 1)
        self.check_arity(ident.name, func, nargs)
        if ident.name in ("and", "or"):
            return self.eval_and_or(dot, ident.name, args, final)
        argv = [self.eval_arg(dot, a) for a in args] + ([] if final is _NO_FINAL else [final])
        argv = [self.convert(func, i, v, args[i] if i < len(args) else cmd) for i, v in enumerate(argv)]
        self.at(cmd)
        try:
            return func.fn(*argv)
        except (_CallError, ValueError, TypeError) as e:
            raise self.error(f"error calling {ident.name}: {e}") from None

    def check_arity(self, name: str, func: Function, nargs: int) -> None:
        want = len(func.params)
        if func.variadic is None and nargs != want:
            raise self.error(f"wrong number of args for {name}: want {want} got {nargs}")
        if func.variadic is not None and nargs < want:
            raise self.error(f"wrong number of args for {name}: want at least {want} got {nargs}")

    def convert(self, func: Function, i: int, value: Any, node: _Node) -> Any:
        """Check argument `i` against the function's parameter kind, as Go's reflection would."""
        kind = func.params[i] if i < len(func.params) else func.variadic
        if value is MISSING:
            value = None
        if kind == "str" and not isinstance(value, str):
            self.at(node)
            raise self.error(f"wrong type for value; expected string; got {go_type(value)}")
        if kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
            self.at(node)
            raise self.error(f"wrong type for value; expected int; got {go_type(value)}")
        return value

    def eval_and_or(self, dot: Any, name: str, args: list[_Node], final: Any) -> Any:
        """and/or evaluate their operands lazily, returning the deciding operand, as Go 1.18+."""
        value: Any = None
        operands: list[Any] = [*args, final] if final is not _NO_FINAL else list(args)
        for operand in operands:
            value = self.eval_arg(dot, operand) if isinstance(operand, _Node) else operand
            if truth(value) != (name == "and"):
                return value
        return value


class _NoFinal:
    """Marks "no value piped in from a previous command"."""


_NO_FINAL = _NoFinal()


# ---------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------


class Template:
    """A parsed template; `execute` may be called many times."""

    def __init__(self, text: str, funcs: Mapping[str, Function] | None = None) -> None:
        self.text = text
        self.funcs: dict[str, Function] = {**BUILTINS, **(funcs or {})}
        self.nodes = _Parser(text, self.funcs).parse()

    def execute(self, data: Any, *, missing_key: str = "default") -> str:
        """Run the template on `data`. `missing_key="error"` makes a missing map key an error
        (Go's ``missingkey=error``, as `docker inspect -f` uses) instead of ``<no value>``."""
        state = _State(self, MISSING if data is None else data, missing_key == "error")
        state.walk(self.nodes, state.vars[0][1])
        return "".join(state.out)


def parse(template: str, funcs: Mapping[str, Function] | None = None) -> Template:
    """Parse `template` (Go syntax); `funcs` add to or replace the default functions."""
    return Template(template, funcs)


def render(template: str, data: Any, *, missing_key: str = "default") -> str:
    """Parse and execute `template` on `data`; raises TemplateError with Go's texts."""
    return parse(template).execute(data, missing_key=missing_key)
