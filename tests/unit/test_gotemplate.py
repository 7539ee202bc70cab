"""Go text/template semantics; expected outputs are what Go's text/template (and docker's funcs) print."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from katadocker.cli.gotemplate import (
    HEADER_FUNCS,
    TemplateError,
    go_json,
    go_quote,
    parse,
    render,
    sprintf,
)

DATA = {
    "ID": "abc123",
    "Num": 3,
    "Float": 1.5,
    "Big": 1e6,
    "Yes": True,
    "No": False,
    "Nil": None,
    "Empty": "",
    "List": ["a", "b", "c"],
    "Ints": [3, 1, 2],
    "Map": {"b": 2, "a": 1},
    "Labels": {"com.example": "x", "z": "last"},
    "Config": {"Env": ["A=1", "B=2"], "Cmd": None, "Labels": {}},
    "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}},
}


def r(template: str, data: object = DATA, **kw: str) -> str:
    return render(template, data, **kw)


@pytest.mark.parametrize(("template", "expected"), [
    ("plain text", "plain text"),
    ("{{.ID}}", "abc123"),
    ("{{.Num}}", "3"),
    ("{{.Float}}", "1.5"),
    ("{{.Big}}", "1e+06"),
    ("{{.Yes}} {{.No}}", "true false"),
    ("{{.Nil}}", "<no value>"),
    ("{{.Missing}}", "<no value>"),
    ("{{.List}}", "[a b c]"),
    ("{{.Map}}", "map[a:1 b:2]"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Cmd}}", "<no value>"),
    ("{{.Config.Labels}}", "map[]"),
    ("{{.Missing.Deeper}}", "<no value>"),
    ("{{index .Labels \"com.example\"}}", "x"),
    ("{{index .Labels \"nope\"}}", "<no value>"),
    ("{{index .List 1}}", "b"),
    ("{{index .NetworkSettings.Ports \"80/tcp\" 0 \"HostPort\"}}", "8080"),
    ("{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}", "8080"),
    ("{{$.ID}}", "abc123"),
    ("{{.}}", "map[a:1 b:2]"),
])
def test_fields_and_printing(template: str, expected: str) -> None:
    data = DATA if template != "{{.}}" else {"b": 2, "a": 1}
    assert r(template, data) == expected


def test_printing_nested_and_nil_values() -> None:
    assert r("{{.}}", [1, None, [2, "x"], {"k": None}, True, 0.5]) == "[1 <nil> [2 x] map[k:<nil>] true 0.5]"
    assert r("{{.}}", None) == "<no value>"
    assert r("{{.}}", 1234567.0) == "1.234567e+06"
    assert r("{{.}}", 123456.0) == "123456"
    assert r("{{.}}", 0.00001) == "1e-05"
    assert r("{{.}}", 0.0001) == "0.0001"
    assert r("{{.}}", -2.0) == "-2"


@dataclass
class Port:
    PrivatePort: int
    Type: str


class Context:
    """Like docker's formatter contexts: fields and methods, some taking arguments."""

    def __init__(self) -> None:
        self.Names = "web"
        self.Port = Port(80, "tcp")
        self._labels = {"app": "demo"}

    def ID(self) -> str:
        return "0123456789ab"

    def Label(self, name: str) -> str:
        return self._labels.get(name, "")


@pytest.mark.parametrize(("template", "expected"), [
    ("{{.ID}}", "0123456789ab"),
    ("{{.Names}}", "web"),
    ("{{.Label \"app\"}}", "demo"),
    ("{{.Label \"none\"}}|", "|"),
    ("{{\"app\" | .Label}}", "demo"),
    ("{{.Port.PrivatePort}}/{{.Port.Type}}", "80/tcp"),
    ("{{.Port}}", "{80 tcp}"),
    ("{{json .Port}}", '{"PrivatePort":80,"Type":"tcp"}'),
])
def test_objects_and_methods(template: str, expected: str) -> None:
    assert r(template, Context()) == expected


def test_dict_values_that_are_callables_act_as_methods() -> None:
    assert r('{{.Label "a"}}', {"Label": lambda k: k.upper()}) == "A"


@pytest.mark.parametrize(("template", "expected"), [
    ("{{if .Yes}}y{{end}}", "y"),
    ("{{if .No}}y{{else}}n{{end}}", "n"),
    ("{{if .Empty}}y{{else if .Num}}num{{else}}n{{end}}", "num"),
    ("{{if .Nil}}y{{else if .Missing}}m{{else}}n{{end}}", "n"),
    ("{{if .List}}has{{end}}", "has"),
    ("{{if .Config.Labels}}has{{else}}empty{{end}}", "empty"),
    ("{{if and .Yes .Num}}both{{end}}", "both"),
    ("{{if or .No .Empty}}any{{else}}none{{end}}", "none"),
    ("{{if not .No}}not{{end}}", "not"),
    ("{{with .ID}}[{{.}}]{{end}}", "[abc123]"),
    ("{{with .Empty}}[{{.}}]{{else}}empty{{end}}", "empty"),
    ("{{with .Empty}}a{{else with .Num}}{{.}}{{else}}c{{end}}", "3"),
    ("{{with $x := .Num}}{{$x}}{{.}}{{end}}", "33"),
    ("{{range .List}}{{.}},{{end}}", "a,b,c,"),
    ("{{range $i, $v := .List}}{{$i}}={{$v}} {{end}}", "0=a 1=b 2=c "),
    ("{{range $v := .List}}{{$v}}{{end}}", "abc"),
    ("{{range $k, $v := .Map}}{{$k}}:{{$v}};{{end}}", "a:1;b:2;"),
    ("{{range .Map}}{{.}}{{end}}", "12"),
    ("{{range .Nil}}x{{else}}none{{end}}", "none"),
    ("{{range .Missing}}x{{else}}none{{end}}", "none"),
    ("{{range .Config.Labels}}x{{else}}none{{end}}", "none"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    ("{{range .List}}{{if eq . \"b\"}}{{break}}{{end}}{{.}}{{end}}", "a"),
    ("{{range .List}}{{if eq . \"b\"}}{{continue}}{{end}}{{.}}{{end}}", "ac"),
    ("{{range .List}}{{$.ID}}{{end}}", "abc123abc123abc123"),
    ("{{$n := 0}}{{range .List}}{{$n = .}}{{end}}{{$n}}", "c"),
    ("{{range $k, $v := .NetworkSettings.Ports}}{{$k}} -> {{(index $v 0).HostPort}}{{end}}",
     "80/tcp -> 8080"),
])
def test_control_structures(template: str, expected: str) -> None:
    assert r(template) == expected


@pytest.mark.parametrize(("template", "expected"), [
    ("a  {{- .Num}}", "a3"),
    ("{{.Num -}}  \n b", "3b"),
    ("a \n{{- .Num -}}\n b", "a3b"),
    ("{{- .Num -}}", "3"),
    ("{{/* a comment */}}x", "x"),
    ("a {{- /* trimmed comment */ -}} b", "ab"),
    ("{{-3}}", "-3"),
    ("{{ .Num }}", "3"),
    ("line1\n{{.Num}}\nline3", "line1\n3\nline3"),
])
def test_whitespace_and_comments(template: str, expected: str) -> None:
    assert r(template) == expected


@pytest.mark.parametrize(("template", "expected"), [
    ('{{"quoted\\t\\"x\\""}}', 'quoted\t"x"'),
    ("{{`raw\\n`}}", "raw\\n"),
    ("{{'a'}}", "97"),
    ("{{0x1F}} {{0o17}} {{017}} {{0b11}} {{1_000}}", "31 15 15 3 1000"),
    ("{{1.5}} {{1e3}} {{-2}}", "1.5 1000 -2"),
    ("{{true}} {{false}}", "true false"),
    ('{{"\\u00e9\\x41"}}', "éA"),
])
def test_literals(template: str, expected: str) -> None:
    assert r(template) == expected


@pytest.mark.parametrize(("template", "expected"), [
    ("{{$x := .Num}}{{$x}}", "3"),
    ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
    ("{{$x := .Map}}{{$x.b}}", "2"),
    ("{{if true}}{{$x := 1}}{{$x}}{{end}}", "1"),
    ("{{.ID | printf \"%s!\"}}", "abc123!"),
    ("{{.ID | printf \"%s-%s\" \"x\"}}", "x-abc123"),
    ("{{.ID | upper | printf \"<%s>\"}}", "<ABC123>"),
    ("{{printf \"%d\" (len .List)}}", "3"),
    ("{{(.Map).a}}", "1"),
])
def test_variables_and_pipelines(template: str, expected: str) -> None:
    assert r(template) == expected


@pytest.mark.parametrize(("template", "expected"), [
    ("{{len .List}} {{len .Map}} {{len .ID}} {{len \"é\"}}", "3 2 6 2"),
    ("{{slice .ID 1 3}} {{slice .List 1}}", "bc [b c]"),
    ("{{print 1 2 \"a\" \"b\" 3}}", "1 2ab3"),
    ("{{println \"a\" 1}}", "a 1\n"),
    ("{{eq .Num 3}} {{eq .ID \"x\" \"abc123\"}} {{ne .Num 4}}", "true true true"),
    ("{{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1.5 2.5}}", "true true true false"),
    ("{{eq .Nil nil}} {{eq .Missing \"x\"}}", "true false"),
    ("{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" 5}} {{or 0 \"\"}}", "0 2 5 "),
    ("{{not .Empty}}", "true"),
    ("{{html \"<a href='x'>&\"}}", "&lt;a href=&#39;x&#39;&gt;&amp;"),
    ("{{urlquery \"a b&c\"}}", "a+b%26c"),
])
def test_builtins(template: str, expected: str) -> None:
    assert r(template) == expected


def test_and_or_short_circuit() -> None:
    # The second operand would fail (nil pointer) if it were evaluated.
    assert r("{{and .Nil .Nil.X}}") == "<no value>"
    assert r("{{or .Num .Nil.X}}") == "3"


@pytest.mark.parametrize(("template", "expected"), [
    ("{{json .List}}", '["a","b","c"]'),
    ("{{json .Map}}", '{"b":2,"a":1}'),
    ("{{json .Nil}}", "null"),
    ("{{json .Missing}}", "null"),
    ("{{json .Big}}", "1000000"),
    ("{{json .Float}}", "1.5"),
    ('{{json "<a&b>"}}', '"<a&b>"'),
    ("{{json .NetworkSettings}}", '{"Ports":{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"}]}}'),
    ("{{join .List \",\"}}", "a,b,c"),
    ("{{join .Ints \"-\"}}", "3-1-2"),
    ("{{join .Labels \",\"}}", "last,x"),
    ("{{split \"a:b:c\" \":\"}}", "[a b c]"),
    ("{{index (split \"a:b\" \":\") 1}}", "b"),
    ("{{lower \"ABC\"}} {{upper \"abc\"}}", "abc ABC"),
    ("{{title \"hello wide world\"}}", "Hello Wide World"),
    ("{{title \"ALREADY up\"}}", "ALREADY Up"),
    ("{{truncate \"abcdef\" 3}}|{{truncate \"ab\" 3}}", "abc|ab"),
    ("{{pad \"x\" 2 3}}|{{pad \"\" 2 3}}|", "  x   ||"),
])
def test_docker_functions(template: str, expected: str) -> None:
    assert r(template) == expected


def test_json_value_encoding() -> None:
    assert go_json({"a": [1, 2.5, None, True, "x\n\"y\""]}) == '{"a":[1,2.5,null,true,"x\\n\\"y\\""]}'
    assert go_json("0.0.0.0:80->80/tcp <none>", escape_html=True) == \
        '"0.0.0.0:80-\\u003e80/tcp \\u003cnone\\u003e"'
    assert go_json("\u2028é\x01") == '"\\u2028é\\u0001"'
    assert go_json(1e21) == "1e+21"
    assert go_json(1e-7) == "1e-7"
    assert go_json(0.000001) == "0.000001"
    assert go_json(123456789.0) == "123456789"


@pytest.mark.parametrize(("fmt", "args", "expected"), [
    ("%s|%v|%d", ("a", "b", 3), "a|b|3"),
    ("%5s|%-5s|%.2s", ("ab", "cd", "xyz"), "   ab|cd   |xy"),
    ("%05d|%+d|%x|%X|%o|%b|%c", (42, 5, 255, 255, 8, 5, 65), "00042|+5|ff|FF|10|101|A"),
    ("%q|%q", ("hi \"there\"\n", 97), "\"hi \\\"there\\\"\\n\"|'a'"),
    ("%t|%v", (True, False), "true|false"),
    ("%f|%.2f|%e|%g|%v", (3.14159, 3.14159, 1234.5678, 0.00001234, 2.5),
     "3.141590|3.14|1.234568e+03|1.234e-05|2.5"),
    ("%v|%s|%d", ([1, 2], ["a", "b"], [1, 2]), "[1 2]|[a b]|[1 2]"),
    ("%v", ({"b": 1, "a": 2},), "map[a:2 b:1]"),
    ("%v|%s", (None, None), "<nil>|%!s(<nil>)"),
    ("%d", ("x",), "%!d(string=x)"),
    ("%s", (5,), "%!s(int=5)"),
    ("%d %d", (1,), "1 %!d(MISSING)"),
    ("%d", (1, "x"), "1%!(EXTRA string=x)"),
    ("100%%", (), "100%"),
    ("%T %T %T", ("a", 1, [1]), "string int []interface {}"),
    ("%6.2f|%-8v|", (3.14159, "x"), "  3.14|x       |"),
    ("%x", ("hi",), "6869"),
])
def test_printf(fmt: str, args: tuple, expected: str) -> None:
    assert sprintf(fmt, *args) == expected


def test_go_quote() -> None:
    assert go_quote('a"b\\c\td\x00é') == '"a\\"b\\\\c\\td\\x00é"'


@pytest.mark.parametrize(("template", "message"), [
    ("{{.ID", "template parsing error: template: :1: unclosed action"),
    ("{{if .ID}}x", "template parsing error: template: :1: unexpected EOF"),
    ("{{end}}", "template parsing error: template: :1: unexpected {{end}}"),
    ("{{else}}", "template parsing error: template: :1: unexpected {{else}}"),
    ("{{nosuch .ID}}", 'template parsing error: template: :1: function "nosuch" not defined'),
    ("{{$x}}", 'template parsing error: template: :1: undefined variable "$x"'),
    ("{{}}", "template parsing error: template: :1: missing value for command"),
    ("{{(.ID}}", "template parsing error: template: :1: unclosed left paren"),
    ("{{.ID)}}", "template parsing error: template: :1: unexpected right paren"),
    ('{{"abc}}', "template parsing error: template: :1: unterminated quoted string"),
    ("{{.ID | 1}}", "template parsing error: template: :1: non executable command in pipeline stage 2"),
    ("{{#}}", 'template parsing error: template: :1: unexpected "#" in command'),
    ("{{break}}", "template parsing error: template: :1: {{break}} outside {{range}}"),
    ("{{/* open", "template parsing error: template: :1: unclosed comment"),
    ("a\nb\n{{.ID", "template parsing error: template: :3: unclosed action"),
    ("{{.ID :}}", "template parsing error: template: :1: expected :="),
])
def test_parse_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as exc:
        parse(template)
    assert exc.value.message == message


@pytest.mark.parametrize(("template", "message"), [
    ("{{.Nil.X}}", 'template: :1:2: executing "" at <.Nil.X>: nil pointer evaluating interface {}.X'),
    ("{{.ID.X}}", 'template: :1:2: executing "" at <.ID.X>: can\'t evaluate field X in type string'),
    ("{{index .List 5}}",
     'template: :1:2: executing "" at <index .List 5>: error calling index: index out of range: 5'),
    ("{{index .Nil 0}}",
     'template: :1:2: executing "" at <index .Nil 0>: error calling index: index of untyped nil'),
    ('{{eq .Num "3"}}',
     'template: :1:2: executing "" at <eq .Num "3">: error calling eq: incompatible types for comparison'),
    ("{{lt .Yes .No}}",
     'template: :1:2: executing "" at <lt .Yes .No>: error calling lt: invalid type for comparison'),
    ("{{upper 5}}", 'template: :1:8: executing "" at <5>: wrong type for value; expected string; got int'),
    ("{{upper}}", 'template: :1:2: executing "" at <upper>: wrong number of args for upper: want 1 got 0'),
    ("{{len .Num}}", 'template: :1:2: executing "" at <len .Num>: error calling len: len of type int'),
    ("{{range .ID}}{{end}}",
     'template: :1:2: executing "" at <{{range .ID}}>: range can\'t iterate over abc123'),
    ("x\n  {{.ID.Y}}", 'template: :2:4: executing "" at <.ID.Y>: can\'t evaluate field Y in type string'),
    ('{{.ID "arg"}}', 'template: :1:2: executing "" at <.ID>: ID is not a method but has arguments'),
])
def test_execution_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as exc:
        r(template)
    assert exc.value.message == message


def test_missing_key_error_option() -> None:
    with pytest.raises(TemplateError) as exc:
        r("{{.Config.Nope}}", missing_key="error")
    assert exc.value.message == ('template: :1:2: executing "" at <.Config.Nope>: '
                                 'map has no entry for key "Nope"')
    assert r("{{index .Labels \"nope\"}}", missing_key="error") == "<no value>"


def test_template_is_reusable_and_header_functions() -> None:
    template = parse("{{.A}}-{{upper .B}}")
    assert template.execute({"A": 1, "B": "x"}) == "1-X"
    assert template.execute({"A": 2, "B": "y"}) == "2-Y"
    header = parse("{{upper .Name}}\t{{truncate .ID 3}}\t{{json .Labels}}", HEADER_FUNCS)
    assert header.execute({"Name": "NAME", "ID": "CONTAINER ID", "Labels": "LABELS"}) == \
        "NAME\tCONTAINER ID\tLABELS"


def test_template_error_is_a_katadocker_error() -> None:
    from katadocker.errors import KatadockerError

    with pytest.raises(KatadockerError) as exc:
        render("{{.X", {})
    assert exc.value.daemon is False
