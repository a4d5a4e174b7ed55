"""The command's stdout and stderr under `runtracker exec`: each to the wrapper's own, byte for byte; both in
the tail in the order they arrived; and a reader that goes away ends the command as it would without us."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess

from exec_support import child, exec_argv, killed_if_stuck, run_exec, start_exec, summary

from helpers import Db, app_env

BOTH_STREAMS = """
import sys
out = bytes(range(256)) * 1024 + b"\\nbad utf-8 \\xff\\xfe, NUL \\x00, cut \\xe2\\x82 end of stdout"
err = bytes(reversed(range(256))) * 1024 + b"\\nPNG \\x89PNG\\r\\n\\x1a\\n end of stderr"
# Alternating 4 KB pieces, so that both pipes are written to (and fill up) at the same time.
for start in range(0, max(len(out), len(err)), 4096):
    sys.stdout.buffer.write(out[start:start + 4096])
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(err[start:start + 4096])
    sys.stderr.buffer.flush()
"""
OUT = bytes(range(256)) * 1024 + b"\nbad utf-8 \xff\xfe, NUL \x00, cut \xe2\x82 end of stdout"
ERR = bytes(reversed(range(256))) * 1024 + b"\nPNG \x89PNG\r\n\x1a\n end of stderr"

JSON_AND_A_LOG_LINE = """
import sys
print("fetching members", file=sys.stderr, flush=True)
print('{"members": 40}', flush=True)
print("done", file=sys.stderr, flush=True)
"""


def run_shell(tmp_path, db_url, script: str) -> subprocess.CompletedProcess[bytes]:
    """Run `script` with bash, in which `rt ARGS` is `runtracker exec --pipeline nikki ARGS`.

    Started in a session of its own, and the whole session killed if it has not ended after 60 s, so that
    a wrapper (or a command) that would run forever fails the test instead of outliving it.
    """
    script = f'rt() {{ {shlex.join(exec_argv())} "$@"; }}\n{script}'
    proc = subprocess.Popen(["bash", "-c", script], env=app_env(db_url), cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with killed_if_stuck(proc):
        out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def output_tail(db_url, run_id: int) -> str | None:
    return Db(db_url).query("SELECT output_tail FROM runs WHERE id = ?", (run_id,))[0]["output_tail"]


def test_stdout_and_stderr_reach_our_stdout_and_stderr_byte_for_byte(tmp_path, db_url):
    """256 KB of binary on each stream, written in turns: each arrives unchanged on the wrapper's own one."""
    result = run_exec(tmp_path, db_url, "--", *child(tmp_path, BOTH_STREAMS))
    assert result.returncode == 0
    assert result.stdout == OUT
    assert result.stderr == ERR
    [run] = Db(db_url).runs()
    assert run["outcome"] == "success"
    assert summary(run)["output_bytes"] == len(OUT) + len(ERR)
    assert "output_closed" not in summary(run)


def test_stdout_redirected_to_a_file_by_a_shell_holds_only_the_commands_stdout(tmp_path, db_url):
    """`rt -- cmd > members.json` in a shell: the file is the command's stdout; its log lines stay on stderr."""
    command = shlex.join(child(tmp_path, JSON_AND_A_LOG_LINE))
    result = run_shell(tmp_path, db_url, f"rt -- {command} > members.json")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "members.json").read_bytes() == b'{"members": 40}\n'
    assert result.stdout == b""
    assert result.stderr == b"fetching members\ndone\n"


def test_stderr_to_dev_null_in_a_shell_hides_only_the_commands_stderr(tmp_path, db_url):
    """`rt -- cmd 2>/dev/null` in a shell: the stdout is all that is left; the tail still has both."""
    command = shlex.join(child(tmp_path, JSON_AND_A_LOG_LINE))
    result = run_shell(tmp_path, db_url, f"rt -- {command} 2>/dev/null")
    assert result.returncode == 0
    assert result.stdout == b'{"members": 40}\n'
    assert result.stderr == b""
    [run] = Db(db_url).runs()
    assert output_tail(db_url, run["id"]) is not None
    assert "fetching members" in output_tail(db_url, run["id"])


TAKES_TURNS = """
import os, sys
for i, fd in enumerate([1, 2, 2, 1, 2]):
    os.write(fd, b"%s %d\\n" % (b"out" if fd == 1 else b"err", i))
    sys.stdin.readline()  # the test saw that line come out of the wrapper: the next one arrives after it
"""


def test_the_tail_holds_both_streams_in_the_order_they_arrived(tmp_path, db_url):
    """Lines on stdout and stderr in turns, each written once the previous one came out: the tail has them
    interleaved in that order, while each stream got only its own."""
    proc = start_exec(tmp_path, db_url, "--", *child(tmp_path, TAKES_TURNS), stdin=subprocess.PIPE)
    with killed_if_stuck(proc):
        for i, stream in enumerate([proc.stdout, proc.stderr, proc.stderr, proc.stdout, proc.stderr]):
            assert stream.readline() == b"%s %d\n" % (b"out" if stream is proc.stdout else b"err", i)
            proc.stdin.write(b"next\n")
            proc.stdin.flush()
        out, err = proc.communicate()
    assert proc.returncode == 0 and out == err == b""
    [run] = Db(db_url).runs()
    assert output_tail(db_url, run["id"]) == "out 0\nerr 1\nerr 2\nout 3\nerr 4\n"


def test_yes_into_head_returns_at_once_with_141_and_records_the_closed_reader(tmp_path, db_url):
    """`rt -- yes | head -1`: head's line, then `yes` dies of SIGPIPE and the wrapper too (the shell sees 141);
    the run is a `failure` saying that the reader of its stdout went away."""
    result = run_shell(tmp_path, db_url, 'rt -- yes | head -1\necho "${PIPESTATUS[*]}" >&2')
    assert result.stdout == b"y\n"
    assert result.stderr == b"141 0\n"
    db = Db(db_url)
    [run] = db.runs()
    assert run["outcome"] == "failure" and run["exit_code"] is None
    s = summary(run)
    assert (s["kind"], s["signal"], s["output_closed"]) == ("signal", "SIGPIPE", "stdout")
    assert db.crash_rows(run["id"])[0]["error_message"] == "killed by SIGPIPE (the reader of its stdout went away)"
    assert set(output_tail(db_url, run["id"])) == {"y", "\n"}


def test_a_reader_of_stderr_going_away_kills_the_command_and_the_wrapper_by_sigpipe(tmp_path, db_url):
    """The reader of the wrapper's stderr closes it: the command writing there dies of SIGPIPE, then the
    wrapper by SIGPIPE; its stdout was passed on meanwhile, and the run names stderr."""
    proc = start_exec(tmp_path, db_url, "--", "sh", "-c", "echo on stdout; exec yes 'on stderr' >&2")
    with killed_if_stuck(proc):
        assert proc.stderr.readline() == b"on stderr\n"
        proc.stderr.close()
        out = proc.stdout.read()
        proc.wait()
    assert proc.returncode == -signal.SIGPIPE
    assert out == b"on stdout\n"
    db = Db(db_url)
    [run] = db.runs()
    assert run["outcome"] == "failure"
    assert (summary(run)["signal"], summary(run)["output_closed"]) == ("SIGPIPE", "stderr")
    assert db.crash_rows(run["id"])[0]["error_message"] == "killed by SIGPIPE (the reader of its stderr went away)"


HANDLES_EPIPE = """
import os, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as Python does anyway: a write to a closed pipe raises
try:
    while True:
        os.write(1, b"member\\n")
except BrokenPipeError:
    os.write(2, b"stdout closed (EPIPE), stopping the sync\\n")
    sys.exit(3)
"""


def test_a_command_ignoring_sigpipe_gets_epipe_and_its_own_exit_is_recorded(tmp_path, db_url):
    """A command ignoring SIGPIPE gets EPIPE once our reader went away, and exits 3 its own way: the wrapper
    exits 3, and the run records exit 3 and the closed stdout."""
    proc = start_exec(tmp_path, db_url, "--", *child(tmp_path, HANDLES_EPIPE))
    with killed_if_stuck(proc):
        assert proc.stdout.readline() == b"member\n"
        proc.stdout.close()
        err = proc.stderr.read()
        proc.wait()
    assert proc.returncode == 3
    assert err == b"stdout closed (EPIPE), stopping the sync\n"
    db = Db(db_url)
    [run] = db.runs()
    assert run["outcome"] == "failure" and run["exit_code"] == 3
    assert summary(run)["output_closed"] == "stdout" and "signal" not in summary(run)
    assert db.crash_rows(run["id"])[0]["error_message"] == "exited with code 3 (the reader of its stdout went away)"


def test_a_background_process_holding_stderr_does_not_keep_the_wrapper_waiting(tmp_path, db_url):
    """A process the command leaves behind holds its stderr pipe only: the wrapper stops waiting for it, with
    each stream's output on its own stream and `"output_complete": false`."""
    script = "sleep 60 >/dev/null & echo $! > background.pid; echo done; echo log >&2"
    try:
        result = run_exec(tmp_path, db_url, "--", "sh", "-c", script)
    finally:
        if (tmp_path / "background.pid").exists():
            os.kill(int((tmp_path / "background.pid").read_text()), signal.SIGKILL)
    assert result.returncode == 0
    assert result.stdout == b"done\n"
    assert result.stderr == b"log\n"
    [run] = Db(db_url).runs()
    assert run["outcome"] == "success" and summary(run)["output_complete"] is False

