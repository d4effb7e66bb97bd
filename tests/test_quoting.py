"""Values placed in shell commands: quoted for where each placeholder stands, never run as code.

Every check runs the rendered command in a real bash and looks at what the program received and
whether a payload ran (it would create a file named PWNED in the working folder).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlproj import quoting
from mlproj.errors import SpecError
from mlproj.spec import load_project
from tests.helpers import command_project, mlproj, write_project

PAYLOADS = [
    "$(touch PWNED)",
    "`touch PWNED`",
    "'; touch PWNED; '",
    '"; touch PWNED; "',
    "\\'; touch PWNED #",
    "$'\\''; touch PWNED",
    "\ntouch PWNED\n",
    "x\nEOF\ntouch PWNED",
    "a[$(touch PWNED)]",
    "${PWNED:=$(touch PWNED)}",
    "$((1+1)) !! \\ \\\\ \\\n",
    "' \" ` $ \\ ; & | < > ( ) { } [ ] * ? ~ #",
    "it's",
    "",
]


def render(template: str, value: str) -> str:
    parts = template.split("{x}")
    slots = quoting.analyse(parts)
    return quoting.render(parts, slots, [value] * len(slots))


def bash(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, check=False)


def received(template: str, value: str, cwd: Path) -> str:
    """What `printf '%s'` in the template wrote to out.txt, after checking that nothing ran."""
    done = bash(render(template, value), cwd)
    assert not (cwd / "PWNED").exists(), f"the payload ran: {render(template, value)!r}"
    assert done.returncode == 0, done.stderr
    return (cwd / "out.txt").read_text()


# --- each context --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", PAYLOADS)
@pytest.mark.parametrize(
    ("template", "suffix"),
    [
        ("printf '%s' {x} > out.txt", ""),
        ("printf '%s' '{x}' > out.txt", ""),
        ("printf '%s' \"{x}\" > out.txt", ""),
        ("printf '%s' $'{x}' > out.txt", ""),
        ("printf '%s' $\"{x}\" > out.txt", ""),
        ("# print the user's value\nprintf '%s' {x} > out.txt", ""),
        ("cat > out.txt <<EOF\n{x}\nEOF", "\n"),
        ("cat > out.txt <<-'EOF'\n{x}\n\tEOF", "\n"),
        ("v=\"$(printf '%s.' {x})\"; printf '%s' \"${v%.}\" > out.txt", ""),
        ("v=`printf '%s.' {x}`; printf '%s' \"${v%.}\" > out.txt", ""),
        ("case {x} in *) printf '%s' {x} > out.txt;; esac", ""),
        ("x=$(case a in a) printf '%s.' {x};; esac); printf '%s' \"${x%.}\" > out.txt", ""),
        ("f() { printf '%s' \"$1\" > out.txt; }; f {x}", ""),
        ("[[ {x} == zz ]] || printf '%s' {x} > out.txt", ""),
        ("printf '%s' {x} > out.txt # and it's {x} here", ""),
        ("cat <<'A' >/dev/null; printf '%s' {x} > out.txt\nit's $(not run)\nA", ""),
        ("bash -c 'printf %s \"$1\" > out.txt' sh {x}", ""),
        ("printf '%s' {x} | cat > out.txt", ""),
    ],
)
def test_the_program_receives_the_value_literally(
    tmp_path: Path, template: str, suffix: str, value: str
) -> None:
    if "EOF" in template and "\nEOF" in f"\n{value}".replace("\t", ""):
        with pytest.raises(quoting.UnsafeValue, match="structure of the command"):
            render(template, value)
        return
    assert received(template, value, tmp_path) == value + suffix


def test_a_comment_with_an_apostrophe_before_the_placeholder_does_not_open_a_quote(tmp_path: Path) -> None:
    command = render("# print the user's value\necho {x}", "$(touch PWNED)")
    done = bash(command, tmp_path)
    assert done.stdout == "$(touch PWNED)\n"
    assert not (tmp_path / "PWNED").exists()


def test_a_value_in_a_comment_never_leaves_it(tmp_path: Path) -> None:
    command = render("true # {x}\necho done", "x\ntouch PWNED")
    assert bash(command, tmp_path).stdout == "done\n"
    assert not (tmp_path / "PWNED").exists()


def test_integers_stand_in_arithmetic(tmp_path: Path) -> None:
    assert bash(render("echo $(( {x} * 2 ))", "21"), tmp_path).stdout == "42\n"
    assert bash(render("for ((i=0; i<{x}; i++)); do echo $i; done", "2"), tmp_path).stdout == "0\n1\n"
    with pytest.raises(quoting.UnsafeValue, match="only an integer"):
        render("echo $(( {x} * 2 ))", "a[$(touch PWNED)]")


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("echo ${HOME:-{x}}", "inside \\$\\{…\\}"),
        ("echo \\{x}", "follows a backslash"),
        ('echo "\\{x}"', "follows a backslash"),
        ("eval echo {x}", "argument of `eval`"),
        ("trap 'echo {x}' EXIT", "argument of `trap`"),
        ("bash -c 'echo {x}'", "command string of `bash -c`"),
        ('sh -e -o pipefail -c "echo {x}"', "command string of `sh -c`"),
        ("cat <<{x}\nhi\n{x}", "heredoc's delimiter"),
        ('echo "`echo {x}`"', "backquotes within double quotes"),
        ("echo `echo \\`echo {x}\\``", "nested backquotes"),
    ],
)
def test_places_where_no_value_can_stand_are_refused(template: str, reason: str) -> None:
    parts = template.split("{x}")
    slots = quoting.analyse(parts)
    assert any(slot.refused for slot in slots)
    with pytest.raises(quoting.UnsafeValue, match=reason):
        quoting.render(parts, slots, ["v"] * len(slots))


@pytest.mark.parametrize(
    "template",
    [
        "[[ {x} -eq 1 ]]",
        "[[ 1 -lt {x} ]]",
        "[[ -v {x} ]]",
        "a[{x}]=1",
        "unset 'a[{x}]'",
        "read -r {x} < /dev/null",
        "let n={x}",
        "declare -i n={x}",
        "declare {x}=1",
        "printf -v {x} %s 1",
        "arr=([{x}]=1)",
        "echo $[ {x} + 1 ]",
        'echo $(( "{x}" ))',
    ],
)
def test_where_the_shell_evaluates_arithmetic_only_integers_stand(tmp_path: Path, template: str) -> None:
    parts = template.split("{x}")
    slots = quoting.analyse(parts)
    assert all(slot.numeric_only for slot in slots), slots
    with pytest.raises(quoting.UnsafeValue, match="only an integer"):
        quoting.render(parts, slots, ["a[$(touch PWNED)]"] * len(slots))
    bash(quoting.render(parts, slots, ["1"] * len(slots)), tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_an_unreadable_template_with_placeholders_is_refused_and_one_without_is_not() -> None:
    with pytest.raises(quoting.TemplateError, match="unterminated single quote"):
        quoting.analyse(["echo 'a ", ""])
    assert quoting.analyse(["echo 'a "]) == []


def test_a_heredoc_body_line_equal_to_its_delimiter_is_refused(tmp_path: Path) -> None:
    with pytest.raises(quoting.UnsafeValue, match="structure of the command"):
        render("cat <<EOF\n{x}\nEOF\necho after", "EOF")
    assert bash(render("cat <<EOF\n{x}\nEOF", "EOF!"), tmp_path).stdout == "EOF!\n"


# --- the property: random templates and hostile values ----------------------------------------------------

DELIVERIES = [
    ("printf '%s' {x} > out{n}", ""),
    ("printf '%s' '{x}' > out{n}", ""),
    ("printf '%s' \"{x}\" > out{n}", ""),
    ("printf '%s' $'{x}' > out{n}", ""),
    ("cat > out{n} <<EOF\n{x}\nEOF", "\n"),
    ("cat > out{n} <<'EOF'\n{x}\nEOF", "\n"),
    ("v=`printf '%s.' {x}`; printf '%s' \"${v%.}\" > out{n}", ""),
    ('v="$(printf \'%s.\' "{x}")"; printf \'%s\' "${v%.}" > out{n}', ""),
    ("case {x} in *) printf '%s' {x} > out{n};; esac", ""),
    ("[[ {x} == \"zz'\" ]] || printf '%s' {x} > out{n}", ""),
]
NOISE = [
    '# the user\'s value, "quoted" and `ticked`',
    "true # it's {x}",
    ": $(( 1 + 2 ))",
    "cat <<'X' > /dev/null\nit's \"odd\" $(not run) `nor this`\nX",
    ": 'a \"b' \"c 'd\" $'e\\'f'",
    ': ${HOME:+"it\'s"}',
    "x=$(echo ')'); : \"$x\"",
    'case a in (a|b) : "it\'s";; esac',
    'f() { : "it\'s"; }',
]
VALUES = st.one_of(
    st.sampled_from(PAYLOADS),
    st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=40),
    st.lists(st.sampled_from(PAYLOADS), min_size=2, max_size=3).map("".join),
)


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    pieces=st.lists(
        st.one_of(st.sampled_from(range(len(DELIVERIES))), st.sampled_from(NOISE)), min_size=1, max_size=5
    ),
    value=VALUES,
)
def test_no_value_ever_runs_whatever_the_template(
    tmp_path_factory: pytest.TempPathFactory, pieces: list[int | str], value: str
) -> None:
    """The payload never runs; each program receives the value literally, unless the template puts it
    on a heredoc line of its own and the value holds that heredoc's delimiter (then it is refused)."""
    cwd = tmp_path_factory.mktemp("q")
    lines: list[str] = []
    expected: dict[str, str] = {}
    for n, piece in enumerate(pieces):
        if isinstance(piece, int):
            template, suffix = DELIVERIES[piece]
            lines.append(template.replace("{n}", str(n)))
            expected[f"out{n}"] = suffix
        else:
            lines.append(piece)
    template = "\n".join(lines)
    try:
        command = render(template, value)
    except quoting.UnsafeValue as exc:
        assert "structure" in str(exc)
        assert "EOF" in value.splitlines() or "X" in value.splitlines(), (template, value)
        return
    done = bash(command, cwd)
    assert not (cwd / "PWNED").exists(), command
    assert done.returncode == 0, (command, done.stderr)
    for name, suffix in expected.items():
        assert (cwd / name).read_text() == value + suffix, command


# --- projects and pipelines -----------------------------------------------------------------------------


def test_a_project_whose_placeholder_cannot_be_quoted_is_refused_with_its_line(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        "name: t\nentry_points:\n  main:\n    parameters:\n      x: string\n"
        "    command: |\n      echo start\n      eval echo {x}\n",
    )
    with pytest.raises(SpecError, match=r"MLproject:8: entry_points\.main\.command: placeholder \{x\}.*eval"):
        load_project(project).entry_point("main")


def test_a_project_may_use_an_int_in_arithmetic_and_not_a_string(tmp_path: Path) -> None:
    good = write_project(
        tmp_path / "good",
        "entry_points:\n  main:\n    parameters: {n: int}\n    command: 'echo $(( {n} + 1 ))'\n",
    )
    load_project(good).entry_point("main")
    bad = write_project(
        tmp_path / "bad",
        "entry_points:\n  main:\n    parameters: {n: string}\n    command: 'echo $(( {n} + 1 ))'\n",
    )
    with pytest.raises(SpecError, match=r"placeholder \{n\}.*arithmetic.*only an integer is safe"):
        load_project(bad).entry_point("main")


def test_mlproj_run_passes_a_payload_after_a_commented_apostrophe_literally(tmp_path: Path) -> None:
    project = command_project(
        tmp_path / "p", "# print the user's value\necho {x}", "    parameters:\n      x: string\n"
    )
    done = mlproj("run", str(project), "-P", "x=$(touch PWNED)", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "$(touch PWNED)" in done.stdout
    assert not (tmp_path / "PWNED").exists()
    assert not (project / "PWNED").exists()
