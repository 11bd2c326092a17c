"""Go templates as docker runs them: the examples of docker's "Format command and log
output" page and Go's ``text/template`` rules, with the outputs and error texts Go gives
(worked out from Go's documentation; the docker CLI itself is the oracle in
``test_gotemplate_docker`` below, through ``docker context inspect``, which needs no daemon)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from typing import Any

import pytest
from ocirt.manager import gotemplate
from ocirt.manager.gotemplate import Record, TemplateError

CONTAINER: dict[str, Any] = {
    "Name": "/web",
    "Args": ["-c", "sleep 9"],
    "Image": "busybox:latest",
    "State": {"Status": "running", "Pid": 42, "ExitCode": 0, "Health": None},
    "Config": {"Env": ["PATH=/bin", "A=1"], "Labels": {"b": "2", "a": "1"}, "Entrypoint": None},
    "Mounts": [{"Type": "volume", "Source": "/v/data", "Destination": "/data", "RW": True}],
    "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "10.0.0.2"}, "alt": {"IPAddress": "10.1.0.2"}}},
    "Ratio": 0.25,
}


def render(text: str, data: Any = CONTAINER) -> str:
    return gotemplate.parse(text).execute(data)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        # docker's documented functions
        ('{{join .Args " , "}}', "-c , sleep 9"),
        ("{{json .Mounts}}", '[{"Type":"volume","Source":"/v/data","Destination":"/data","RW":true}]'),
        ("{{lower .Name}}", "/web"),
        ('{{split .Image ":"}}', "[busybox latest]"),
        ("{{title .Name}}", "/Web"),
        ("{{upper .Name}}", "/WEB"),
        ("{{range .NetworkSettings.Networks}}{{println .IPAddress}}{{end}}", "10.1.0.2\n10.0.0.2\n"),
        # fields, maps, printing as Go's fmt does
        ("{{.State.Pid}}", "42"),
        ("{{.Config.Labels.a}}", "1"),
        ("{{.Config.Labels}}", "map[a:1 b:2]"),
        ("{{.Args}}", "[-c sleep 9]"),
        ("{{.Mounts}}", "[map[Destination:/data RW:true Source:/v/data Type:volume]]"),
        ("{{.Config.Entrypoint}}", "<no value>"),
        ("{{.Ratio}} {{1e6}} {{0.00001}} {{123456.0}}", "0.25 1e+06 1e-05 123456"),
        ('{{index .Config.Labels "b"}} {{index .Args 1}}', "2 sleep 9"),
        ('{{(index .NetworkSettings.Networks "bridge").IPAddress}}', "10.0.0.2"),
        # range with variables and else, over maps in key order
        ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:PATH=/bin 1:A=1 "),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "a=1,b=2,"),
        ("{{range .Config.Entrypoint}}x{{else}}none{{end}}", "none"),
        ("{{range $n, $c := .NetworkSettings.Networks}}{{$n}} {{end}}", "alt bridge "),
        ("{{range .Args}}{{$.Name}}{{end}}", "/web/web"),
        # conditionals and comparisons
        (
            '{{if eq .State.Status "running"}}up{{else if eq .State.Status "exited"}}down{{else}}?{{end}}',
            "up",
        ),
        ("{{if and .State.Pid (not .State.ExitCode)}}ok{{end}}", "ok"),
        ('{{or .State.Health "none"}}', "none"),
        ('{{and 1 0 2}} {{or 0 "" 3}}', "0 3"),
        ('{{eq .State.Status "exited" "running"}}', "true"),
        (
            "{{ne .State.Pid 42}} {{lt 1 2}} {{gt .State.Pid 100}} {{le 2 2}} {{ge 1 2}}",
            "false true false true false",
        ),
        ("{{with .State}}{{.Status}}{{end}}{{with .State.Health}}x{{else}}-{{end}}", "running-"),
        # len, pipelines, printf, print
        ("{{len .Config.Env}} {{len .Name}} {{len .Config.Labels}}", "2 4 2"),
        ('{{.Name | upper | printf "%s!"}}', "/WEB!"),
        (
            '{{printf "%s=%d %5s|%-4d|%q %v %t %x %05.1f" "a" 7 "r" 3 "q" .Args true 255 3.14159}}',
            'a=7     r|3   |"q" [-c sleep 9] true ff 003.1',
        ),
        ('{{printf "%d"}} {{printf "%d" "s"}}', "%!d(MISSING) %!d(string=s)"),
        ('{{print 1 2 "a" "b" 3}}', "1 2ab3"),
        # trimming, comments, variables, literals
        ("a  {{- .State.Pid -}}  b", "a42b"),
        ("{{/* a comment */}}x", "x"),
        ("{{- /* a comment */ -}} x", "x"),
        ("{{$n := .Name}}{{$n}}{{$n = 1}}{{$n}}", "/web1"),
        ('{{"}}"}} {{`{{x}}`}} {{printf "%s}}" "a"}}', "}} {{x}} a}}"),
        ('{{-3}} {{`raw\\n`}} {{"esc\\t"}} {{true}}', "-3 raw\\n esc\t true"),
        ('{{range .Args}}{{if eq . "sleep 9"}}{{break}}{{end}}[{{.}}]{{end}}', "[-c]"),
        ('{{range .Args}}{{if eq . "-c"}}{{continue}}{{end}}[{{.}}]{{end}}', "[sleep 9]"),
    ],
)
def test_renders_as_go(text: str, want: str) -> None:
    assert render(text) == want


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # missing keys fail as docker's inspect (missingkey=error) does, at Go's column
        ("{{.Nope}}", 'template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"'),
        ("{{.State.Nope}}", 'template: :1:8: executing "" at <.State.Nope>: map has no entry for key "Nope"'),
        ("x\n {{.A.B.C}}", 'template: :2:5: executing "" at <.A.B.C>: map has no entry for key "A"'),
        ("{{.Name.X}}", 'template: :1:7: executing "" at <.Name.X>: can\'t evaluate field X in type string'),
        ("{{.Config.Entrypoint.X}}", "nil pointer evaluating interface {}.X"),
        ("{{index .Args 5}}", "error calling index: index out of range: 5"),
        ("{{len .State.Pid}}", "error calling len: len of type int"),
        ('{{eq .State.Pid "42"}}', "error calling eq: incompatible types for comparison"),
        ("{{range .Name}}{{end}}", "range can't iterate over /web"),
        ('{{join .Name ","}}', "expected []string; got string"),
        # parse errors name the line only, as Go's parser does
        ("{{nope .}}", 'template: :1: function "nope" not defined'),
        ("{{if .Name}}x", "template: :1: unexpected EOF"),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{.Name", "template: :1: unclosed action"),
        ("{{$x}}", 'template: :1: undefined variable "$x"'),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        ("{{len}}", "wrong number of args for len: want 1 got 0"),
    ],
)
def test_errors_as_go(text: str, error: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(text)
    assert error in str(caught.value)
    assert "\n" not in str(caught.value)


def test_struct_fields_and_methods() -> None:
    """A docker formatter context: methods with arguments, and Go's struct error."""
    row = Record("*formatter.ContainerContext", {"ID": "abc", "Label": lambda k: {"a": "1"}.get(k, "")})
    assert render('{{.ID}} {{.Label "a"}}|{{.Label "z"}}', row) == "abc 1|"
    assert render('{{"a" | .Label}}', row) == "1"
    with pytest.raises(
        TemplateError, match=r"can't evaluate field Nope in type \*formatter\.ContainerContext"
    ):
        render("{{.Nope}}", row)


def test_missing_key_prints_no_value_when_asked() -> None:
    assert gotemplate.parse("{{.Nope}}").execute({}, missing_key_error=False) == "<no value>"


def test_header_pass_keeps_what_came_before_an_error() -> None:
    """Docker's table header: string functions are identities, a failing action ends it."""
    tmpl = gotemplate.parse('{{upper .Name}}\t{{json .ID}}\t{{.Label "x"}}\t{{.Name}}')
    assert tmpl.header({"Name": "NAME", "ID": "ID", "Label": "LABEL"}) == "NAME\tID\t"


def test_tabwriter_layout() -> None:
    """Go's tabwriter with docker's settings: columns at least 10 wide, 3 spaces of padding,
    the last cell of a line never padded, a line without tabs ending the column block."""
    text = "CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox:latest\tx\nplain\nA\tB\n"
    assert gotemplate.tabulate(text) == (
        "CONTAINER ID   IMAGE            NAMES\nabc            busybox:latest   x\nplain\nA         B\n"
    )


def _docker_cli() -> str:
    path = shutil.which("docker", path="/usr/bin")
    if path is None:
        pytest.fail("the Debian docker CLI (/usr/bin/docker, package docker.io) is needed as the oracle")
    return path


# scalars and JSON only: the context document is typed in the CLI, so a struct prints as {..}
DOCKER_CASES = [
    '{{.Name}} {{upper .Name}} {{title "hello world-x"}} {{lower "AbC"}}',
    "{{json .Endpoints}} {{len .Endpoints}} {{json .}}",
    '{{range $k, $v := .Endpoints}}{{$k}}={{$v.Host}}{{end}} {{split .Endpoints.docker.Host "/"}}',
    '{{if eq .Name "tctx"}}yes{{else}}no{{end}} {{printf "%q|%5.2f|%-6s|%d" .Name 3.14159 "ab" 7}}',
    '{{with .Endpoints.docker}}{{.Host}}{{end}} {{join (split .Name "c") "+"}} {{index (split .Name "c") 1}}',
    "{{.Endpoints.docker.SkipTLSVerify}} {{not .Endpoints.docker.SkipTLSVerify}} {{1e6}} {{1234567.5}}",
    'a {{- .Name -}} b {{/* c */}} {{$x := .Name}}{{$x}}{{println}}{{print 1 2 "s" 3}}',
    '{{.Name\n}} {{if eq .Name\n "tctx"}}y{{end}} {{range $i, $c := split .Name "t"}}{{$i}}{{break}}{{end}}',
    '{{range $i, $c := split .Name ""}}{{if eq $c "c"}}{{continue}}{{end}}{{$i}}{{$c}}{{end}}',
]


def test_same_output_as_docker_cli() -> None:
    """The docker CLI runs Go's text/template with docker's functions on a context's
    document without a daemon: every case renders byte for byte as it does."""
    docker = _docker_cli()
    with tempfile.TemporaryDirectory() as config:
        env = {**os.environ, "DOCKER_CONFIG": config}
        create = [
            "context",
            "create",
            "tctx",
            "--description",
            "hello world-x",
            "--docker",
            "host=unix:///tmp/x.sock",
        ]
        subprocess.run([docker, *create], env=env, check=True, capture_output=True)
        doc = json.loads(
            subprocess.run(
                [docker, "context", "inspect", "tctx"], env=env, check=True, capture_output=True, text=True
            ).stdout
        )[0]
        for case in DOCKER_CASES:
            got = subprocess.run(
                [docker, "context", "inspect", "tctx", "-f", case], env=env, capture_output=True, text=True
            )
            assert got.returncode == 0, got.stderr
            assert render(case, doc) + "\n" == got.stdout, case
