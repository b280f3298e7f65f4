"""The README's walk-through runs as written, against a freshly seeded server.

Nothing here repeats the README's commands: the test reads them out of README.md.

- Which blocks run: every ```sh block under the `## ` sections of WALKTHROUGH, in order, in
  one bash session with `set -euo pipefail`, in a scratch folder, with `API` pointing at a
  server started by `make run` on a free port with its own data folder (embedded SQLite,
  eager tasks, freshly seeded). The ```sh blocks of the sections in NOT_RUN are shown to
  readers and not run here; a ```sh block in any other section fails the test until it is
  put in one list or the other.
- What is checked: a comment `# → <expected>` on a command's last line, or on the comment
  lines right after the command (continued by comment lines indented under it), is what
  that command prints. JSON is matched loosely: an object needs the keys shown (others may
  follow), `…` or `...` stands for any value, for the rest of a list or object, or for the
  rest of a string ("9f2c…"); the first JSON value printed is the one compared. Anything
  else is compared with the first line printed. A command whose output carries one of
  Baeum's error bodies fails, unless its `# →` shows that error.
- A failure names the README line, the section and the command, and shows what it printed.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.integration.test_embedded_server import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# The `## ` sections whose ```sh blocks are the walk-through, run in order.
WALKTHROUGH = ("Walk-through with curl",)
# The `## ` sections whose ```sh blocks are not run here, and why.
NOT_RUN = {
    "The two commands": "`make run` and `make test`: this test runs in one and starts the other",
    "Running in production": "needs PostgreSQL, a broker, secrets and gunicorn workers",
    "Running a city-wide round": "needs a PostgreSQL server and several machines",
    "Development": "the test suite, lint and CI",
    "Configuration": "no commands to run",
}
EXPECT = "# → "
SERVER_START_SECONDS = 180
SCRIPT_SECONDS = 240


@dataclass
class Command:
    text: str
    line: int  # 1-based line in README.md where the command starts
    section: str
    expected: list[str] = field(default_factory=list)

    @property
    def expectation(self) -> str:
        return " ".join(part.strip() for part in self.expected).strip()


@dataclass
class Block:
    section: str  # the `## ` heading
    heading: str  # the nearest heading, `## ` or `### `
    line: int
    lines: list[tuple[int, str]]


def readme_blocks(text: str) -> list[Block]:
    """Every ```sh block of the README with the headings it sits under."""
    blocks: list[Block] = []
    section = heading = ""
    current: Block | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if current is not None:
            if line.strip() == "```":
                blocks.append(current)
                current = None
            else:
                current.lines.append((number, line))
            continue
        if line.startswith("## "):
            section = heading = line[3:].strip()
        elif line.startswith("### "):
            heading = line[4:].strip()
        elif line.strip() == "```sh":
            current = Block(section=section, heading=heading, line=number, lines=[])
    return blocks


def _complete(text: str) -> bool:
    """Whether the lines gathered so far are whole shell commands (bash parses them)."""
    if text.rstrip().endswith("\\"):
        return False
    parsed = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True, check=False)
    # An open here-document is only a warning to bash -n: the command goes on.
    return parsed.returncode == 0 and "here-document" not in parsed.stderr


def commands(block: Block) -> list[Command]:
    """Split a block into its commands, each with the output the README says it prints."""
    found: list[Command] = []
    pending: list[tuple[int, str]] = []
    expecting: Command | None = None
    for number, line in block.lines:
        stripped = line.strip()
        if not pending:
            if stripped.startswith(EXPECT.strip()) and found:
                expecting = found[-1]
                expecting.expected = [stripped[len(EXPECT.strip()) :]]
                continue
            if stripped.startswith("#   ") and expecting is not None:
                expecting.expected.append(stripped[1:])
                continue
            if not stripped or stripped.startswith("#"):
                expecting = None
                continue
        pending.append((number, line))
        text = "\n".join(part for _, part in pending) + "\n"
        if _complete(text):
            command = Command(text=text, line=pending[0][0], section=block.heading)
            inline = re.search(r"\s" + re.escape(EXPECT) + r"(.*)$", pending[-1][1])
            if inline:
                command.expected = [inline.group(1)]
            found.append(command)
            expecting = command if not inline else None
            pending = []
    assert not pending, f"README.md:{pending[0][0]}: the block ends inside a command"
    return found


def walkthrough() -> list[Command]:
    blocks = readme_blocks(README.read_text())
    unclassified = [b for b in blocks if b.section not in WALKTHROUGH and b.section not in NOT_RUN]
    assert not unclassified, (
        "README.md has ```sh blocks in sections this test neither runs nor excludes: "
        + ", ".join(f"line {b.line} ({b.section!r})" for b in unclassified)
        + ". Add the section to WALKTHROUGH or NOT_RUN in tests/integration/test_readme.py."
    )
    return [c for b in blocks if b.section in WALKTHROUGH for c in commands(b)]


# Expected outputs.

ANY = "\x00any"
REST = "\x00rest"
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _pattern(text: str):
    """Read a `# →` JSON pattern: `…` for any value, or for the rest of a list or object."""
    text = text.replace("...", "…")
    pieces = []
    last = 0
    for match in _STRING.finditer(text):
        pieces.append(("code", text[last : match.start()]))
        pieces.append(("string", match.group(0)))
        last = match.end()
    pieces.append(("code", text[last:]))
    out = []
    for kind, piece in pieces:
        if kind == "code":
            piece = re.sub(r",\s*…\s*}", "}", piece)
            piece = re.sub(r"{\s*…\s*}", "{}", piece)
            piece = re.sub(r",\s*…\s*]", lambda _: f", {json.dumps(REST)}]", piece)
            piece = re.sub(r"\[\s*…\s*]", lambda _: f"[{json.dumps(REST)}]", piece)
            piece = piece.replace("…", json.dumps(ANY))
        out.append(piece)
    return json.loads("".join(out))


def _mismatch(expected, actual, path: str = "$") -> str | None:
    """Where `actual` departs from the pattern, or None when it matches."""
    if expected == ANY:
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected an object, got {json.dumps(actual, ensure_ascii=False)}"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}: no key {key!r} (keys: {', '.join(actual)})"
            problem = _mismatch(value, actual[key], f"{path}.{key}")
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{path}: expected a list, got {json.dumps(actual, ensure_ascii=False)}"
        rest = bool(expected) and expected[-1] == REST
        items = expected[:-1] if rest else expected
        if len(actual) < len(items) or (not rest and len(actual) != len(items)):
            return f"{path}: expected {len(items)} items, got {len(actual)}"
        for n, value in enumerate(items):
            problem = _mismatch(value, actual[n], f"{path}[{n}]")
            if problem:
                return problem
        return None
    if isinstance(expected, str) and "…" in expected and isinstance(actual, str):
        regex = ".*".join(re.escape(part) for part in expected.split("…"))
        return None if re.fullmatch(regex, actual, re.DOTALL) else f"{path}: {actual!r}"
    if expected != actual or type(expected) is not type(actual):
        return f"{path}: expected {json.dumps(expected, ensure_ascii=False)}, got " + json.dumps(
            actual, ensure_ascii=False
        )
    return None


def _first_json(output: str):
    try:
        value, _ = json.JSONDecoder().raw_decode(output.lstrip())
    except ValueError:
        return None, False
    return value, True


def _is_error_body(value) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") in {"validation_error", "client_error", "server_error"}
        and "errors" in value
    )


def check(command: Command, output: str) -> str | None:
    """What is wrong with a command's output, or None."""
    value, is_json = _first_json(output)
    expectation = command.expectation
    if not expectation:
        if is_json and _is_error_body(value):
            return "it answered an error the README does not announce"
        return None
    if expectation[0] in '{["' or re.fullmatch(r"-?\d+(\.\d+)?|true|false|null", expectation):
        if not is_json:
            return "it printed no JSON"
        return _mismatch(_pattern(expectation), value)
    first = output.strip().splitlines()[0] if output.strip() else ""
    regex = ".*".join(re.escape(part) for part in expectation.replace("...", "…").split("…"))
    return None if re.fullmatch(regex, first) else f"first line {first!r}"


def _report(command: Command, output: str, problem: str) -> str:
    shown = "\n".join("    " + line for line in command.text.rstrip().splitlines())
    printed = output.strip() or "(nothing)"
    if len(printed) > 1500:
        printed = printed[:1500] + " …"
    says = f"\n  the README says it prints: {command.expectation}" if command.expectation else ""
    return (
        f"README.md line {command.line}, section {command.section!r}:\n{shown}\n"
        f"  {problem}{says}\n  it printed: {printed}"
    )


def run_walkthrough(api: str, workdir: Path) -> list[str]:
    """Run the walk-through's commands in one bash session; return what went wrong."""
    steps = walkthrough()
    script = ["set -euo pipefail"]
    for n, command in enumerate(steps):
        script.append(f"printf '\\n@@step {n}@@\\n'")
        script.append(command.text.rstrip("\n"))
    script.append("printf '\\n@@step end@@\\n'")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BAEUM_"))}
    env["API"] = api
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=SCRIPT_SECONDS,
        check=False,
    )
    parts = re.split(r"\n?@@step (\d+|end)@@\n", done.stdout)
    outputs = dict(zip(parts[1::2], parts[2::2], strict=False))
    started = max((int(k) for k in outputs if k != "end"), default=-1)
    if started < 0:
        return [f"the walk-through did not start (exit {done.returncode}):\n{done.stdout}"]
    problems = []
    for n, command in enumerate(steps[: started + 1]):
        output = outputs[str(n)]
        if n == started and "end" not in outputs:
            problem = f"the session stopped at this command (exit status {done.returncode})"
            problems.append(_report(command, output, problem))
            break
        problem = check(command, output)
        if problem:
            problems.append(_report(command, output, problem))
    return problems


# The server, as `make run` starts it.


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`make run` on a free port, with its own data folder: migrate, seed, serve."""
    if os.environ.get("DATABASE_URL"):
        pytest.skip("the README's server is the embedded one; it runs in the SQLite pass")
    if not shutil.which("curl") or not shutil.which("jq"):
        pytest.fail("the README's walk-through needs curl and jq (.ci/run installs jq)")
    data = tmp_path_factory.mktemp("readme-server")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEMO_PASSWORD", "MAKEFLAGS", "MFLAGS"}
        and not k.startswith(("DJANGO_", "BAEUM_"))
    }
    env["BAEUM_DATA_DIR"] = str(data)
    port = free_port()
    log_path = data / "make-run.log"
    log = log_path.open("w")
    # `-o install`: the virtualenv this test runs in is the installed one; `make test`
    # has just brought it up to date.
    process = subprocess.Popen(
        ["make", "--no-print-directory", "-o", "install", "run", "HOST=127.0.0.1", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + SERVER_START_SECONDS
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"make run stopped:\n{log_path.read_text()[-3000:]}")
            try:
                requests.get(f"{api}/programs/", timeout=5)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    pytest.fail(f"make run did not serve in time:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield api, log_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_readme_walkthrough_runs_as_written(demo_server, tmp_path):
    api, log = demo_server
    problems = run_walkthrough(api, tmp_path)
    assert not problems, "The README's walk-through broke:\n\n" + "\n\n".join(problems)
    served = log.read_text()
    assert "Traceback" not in served, served[served.index("Traceback") - 2000 :][:6000]


def test_make_run_prints_where_it_serves(demo_server):
    _api, log = demo_server
    assert re.search(r"http://127\.0\.0\.1:\d+/staff/", log.read_text())


def test_every_sh_block_is_run_or_excluded_by_name():
    steps = walkthrough()
    assert steps, "no walk-through found in README.md"
    assert any(c.expected for c in steps)


# The checker itself: a README test that passed whatever was printed would guard nothing.


def _block(text: str) -> Block:
    return Block(
        section=WALKTHROUGH[0],
        heading="t",
        line=1,
        lines=list(enumerate(text.splitlines(), start=1)),
    )


def test_commands_split_where_bash_does_and_keep_what_they_print():
    found = commands(
        _block(
            "X=$(echo '{\n  \"a\": 1}' | jq -e .a)\n"
            "cat > f.csv <<CSV\nline\nCSV\n"
            "echo done   # → done\n"
            "# a comment between commands\n"
            "curl -s $API/x/ \\\n  -H 'A: b'\n"
            '# → {"status": "ok",\n#    "n": 2, ...}\n'
        )
    )
    assert [c.line for c in found] == [1, 3, 6, 8]
    assert [c.expectation for c in found] == ["", "", "done", '{"status": "ok", "n": 2, ...}']


def test_the_checker_reads_wildcards_and_finds_departures():
    said = Command(text="x", line=1, section="s", expected=['{"id": …, "flags": ["a", …]}'])
    assert check(said, '{"id": 7, "flags": ["a", "b"], "more": 1}') is None
    assert "flags[0]" in check(said, '{"id": 7, "flags": ["b"]}')
    assert "no key 'id'" in check(said, '{"flags": ["a"]}')
    glob = Command(text="x", line=1, section="s", expected=['{"code": "9f2c…", ...}'])
    assert check(glob, '{"code": "9f2c0e"}') is None
    assert check(glob, '{"code": "aa"}') is not None
    text = Command(text="x", line=1, section="s", expected=["%PDF-1.4"])
    assert check(text, "%PDF-1.4\n") is None and check(text, "<html>") is not None
    quiet = Command(text="x", line=1, section="s")
    error = '{"type": "client_error", "errors": [{"code": "not_found"}]}'
    assert "error the README does not announce" in check(quiet, error)
    assert check(quiet, '{"status": "ok"}') is None
