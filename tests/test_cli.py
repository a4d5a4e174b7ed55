"""The command line: runs, show, selftest; help and docs/cli.md for every command; the docs' links."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from helpers import app_env
from runtracker import RunTracker
from runtracker.cli import cli
from runtracker.storage import open_store

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
CLI_DOCS = ROOT / "docs" / "cli.md"


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_selftest_records_the_seed_self_test_run(db_url):
    """selftest prints the seed's line and leaves a partial run with steps, errors, lists and counts."""
    result = invoke("selftest", "--db", db_url)
    assert result.exit_code == 0
    assert result.output.startswith("Run tracker test complete, run_id: ")
    run_id = int(result.output.rsplit(":", 1)[1])
    shown = json.loads(invoke("show", "--db", db_url, "--json", str(run_id)).output)
    assert shown["run"]["outcome"] == "partial"
    assert [s["step_name"] for s in shown["steps"]] == ["test-step-1", "test-step-2"]
    assert [e["member_identifier"] for e in shown["errors"]] == ["TEST001", "TEST002", "TEST003", None]


@pytest.mark.subprocess
def test_python_m_runtracker_selftest_uses_the_environment_database(tmp_path, sqlite_url):
    """`python -m runtracker selftest` is the same CLI and honours RUNTRACKER_DB."""
    result = subprocess.run([sys.executable, "-m", "runtracker", "selftest"], env=app_env(sqlite_url),
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Run tracker test complete, run_id: 1" in result.stdout
    assert not (tmp_path / "data").exists()


def test_runs_lists_recent_runs_newest_first(db_url):
    """runs shows pipeline, outcome, start, duration and counts, newest first, filtered by pipeline."""
    for pipeline, outcome in (("nikki", "success"), ("freescout", "failure"), ("nikki", "partial")):
        t = RunTracker(pipeline, db=db_url)
        t.start_run()
        s = t.start_step("sync")
        t.end_step(s, "success", created=3, updated=2)
        t.end_run(outcome)
    out = invoke("runs", "--db", db_url).output.splitlines()
    assert out[0].split() == ["id", "pipeline", "outcome", "started", "(UTC)", "duration", "created", "updated",
                              "skipped", "failed"]
    assert [line.split()[1:3] for line in out[1:]] == [["nikki", "partial"], ["freescout", "failure"],
                                                      ["nikki", "success"]]
    assert out[1].split()[-4:] == ["3", "2", "0", "0"]
    only = invoke("runs", "--db", db_url, "--pipeline", "nikki", "--json").output.splitlines()
    assert [json.loads(line)["outcome"] for line in only] == ["partial", "success"]


def test_runs_on_an_empty_database_says_so(db_url):
    """runs with nothing recorded prints 'no runs'."""
    open_store(db_url).close()
    assert invoke("runs", "--db", db_url).output.strip() == "no runs"


def test_show_prints_steps_errors_and_the_crash_stack(db_url):
    """show prints the run, its steps, its errors, and the stack of a crash row."""
    t = RunTracker("nikki", db=db_url)
    with pytest.raises(ValueError):
        with t.run() as run:
            with run.step("sync") as step:
                step.error("member not found", member_identifier="KNVB1")
                raise ValueError("boom")
    out = invoke("show", "--db", db_url, str(run.id)).output
    assert f"run {run.id}  nikki  FAILURE" in out
    assert "sync" in out and "[KNVB1]: member not found" in out
    assert "crash: ValueError: boom" in out and "Traceback (most recent call last)" in out


def test_show_unknown_run_fails_with_a_clear_message(db_url):
    """show of a missing id exits 1 with 'no run with id'."""
    open_store(db_url).close()
    result = CliRunner().invoke(cli, ["show", "--db", db_url, "424242"])
    assert result.exit_code == 1 and "no run with id 424242" in result.output


def _commands():
    return sorted(cli.commands)


# -- the documentation -------------------------------------------------------------------------------------
# Markdown is read the way GitHub renders it: headings and links inside ``` fences are code, not markdown,
# and a heading's anchor is its text lower-cased, without punctuation, spaces turned into hyphens.
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6}) +(.*?)\s*#*\s*$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _outside_fences(text: str) -> list[tuple[int, str]]:
    """The (index, line) pairs of `text` that are not inside a fenced code block."""
    lines, inside = [], False
    for index, line in enumerate(text.splitlines()):
        if FENCE.match(line):
            inside = not inside
        elif not inside:
            lines.append((index, line))
    return lines


def _headings(text: str) -> list[tuple[int, int, str]]:
    """(line index, level, text) of every heading outside code blocks."""
    found = []
    for index, line in _outside_fences(text):
        match = HEADING.match(line)
        if match:
            found.append((index, len(match.group(1)), match.group(2)))
    return found


def _anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of `text` (a repeated heading gets -1, -2, ...)."""
    anchors: set[str] = set()
    for _, _, heading in _headings(text):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def _links(path: Path) -> list[str]:
    """Every link target in the markdown file, outside code blocks and inline code."""
    targets = []
    for _, line in _outside_fences(path.read_text()):
        targets += LINK.findall(re.sub(r"`[^`]*`", "", line))
    return targets


def _cli_section(name: str) -> str | None:
    """The text of docs/cli.md's `## ` or `### ` section whose heading names `runtracker NAME`."""
    text = CLI_DOCS.read_text()
    lines = text.splitlines()
    headings = _headings(text)
    for position, (index, level, heading) in enumerate(headings):
        if level in (2, 3) and re.search(rf"\bruntracker {re.escape(name)}\b", heading):
            end = next((i for i, lvl, _ in headings[position + 1 :] if lvl <= 3), len(lines))
            return "\n".join(lines[index:end])
    return None


def _options(name: str) -> list[str]:
    """Every option string the command's -h lists (`-p`, `--pipeline`, `--no-lock`, `-h`, ...)."""
    command = cli.commands[name]
    group = click.Context(cli, info_name="runtracker", **cli.context_settings)  # -h comes from the group
    ctx = click.Context(command, info_name=name, parent=group, **command.context_settings)
    return [opt for param in command.get_params(ctx) if isinstance(param, click.Option) and not param.hidden
            for opt in (*param.opts, *param.secondary_opts)]


def _mentions(text: str, option: str) -> bool:
    """Whether `option` appears in `text` as a whole option (`-p` is not found inside `--pipeline`)."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help_and_a_section_in_docs_cli_naming_each_option(name):
    """Each command answers -h with its help text and has a docs/cli.md section naming every option -h lists."""
    result = invoke(name, "-h")
    assert result.exit_code == 0 and "Usage:" in result.output
    assert (cli.commands[name].help or "").strip()
    section = _cli_section(name)
    assert section is not None, f"docs/cli.md has no `## runtracker {name}` section"
    options = _options(name)
    assert options and all(_mentions(result.output, option) for option in options)
    missing = [option for option in options if not _mentions(section, option)]
    assert not missing, f"docs/cli.md's section on `runtracker {name}` does not name {missing}"


def test_every_docs_page_is_linked_from_the_readme():
    """The README links every page of docs/, so none is an orphan."""
    linked = {(ROOT / target.split("#", 1)[0]).resolve() for target in _links(README)}
    assert DOCS, "docs/ has no pages"
    assert [page.name for page in DOCS if page.resolve() not in linked] == []


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file_and_heading(page):
    """Each relative link in the README and docs/ names a file that exists and, after #, one of its headings."""
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: -- not ours to check
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
            broken.append(target)
    assert broken == []


_CODE_REF = re.compile(r"`((?:[a-z_]+\.)*[A-Za-z_]+\.[A-Za-z_][A-Za-z0-9_]*)`")
_CLASSES = {"RunTracker": "runtracker.core.tracker.RunTracker", "Store": "runtracker.storage.base.Store",
            "Runs": "runtracker.storage.runs.Runs"}


def _resolve(reference: str) -> bool:
    """Whether `module.name[.attr]` (a module of runtracker) or `Class.attr` names something in the code."""
    import importlib

    first, *rest = reference.split(".")
    if first in _CLASSES:
        module, _, name = _CLASSES[first].rpartition(".")
        target: object = getattr(importlib.import_module(module), name)
    else:
        for room in ("", "base.", "core.", "monitor."):  # docs name a module by its name alone (`hooks._at_exit`)
            try:
                target = importlib.import_module(f"runtracker.{room}{first}")
                break
            except ImportError:
                continue
        else:
            return False
        while rest and hasattr(target, "__path__"):  # a package: descend into its module (exec.wrapper)
            try:
                target = importlib.import_module(f"{target.__name__}.{rest[0]}")  # type: ignore[attr-defined]
            except ImportError:
                break
            rest.pop(0)
    for name in rest:
        if not hasattr(target, name):
            return False
        target = getattr(target, name)
    return True


@pytest.mark.parametrize("page", ["crashes.md", "lifecycle.md"])
def test_every_function_the_docs_name_exists_in_the_code(page):
    """The code the crash table and the lifecycle page point to (`hooks._at_exit`, `Runs.end_run`, ...) exists."""
    text = (ROOT / "docs" / page).read_text()
    references = {ref for ref in _CODE_REF.findall(text) if ref.split(".")[0] in
                  {*_CLASSES, "hooks", "lifecycle", "state", "reaper", "heartbeat", "crashfile", "loop",
                   "exec", "storage", "sanitize", "liveness", "attach", "clock", "opening", "tracker", "context"}}
    assert len(references) >= 10 and not _resolve("hooks._no_such_hook")
    assert sorted(ref for ref in references if not _resolve(ref)) == []
