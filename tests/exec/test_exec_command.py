"""`runtracker exec` around real commands that really exit, crash and get signals: the run it records, and
the status it exits with (the command's own, or death by the command's signal)."""

from __future__ import annotations

import fcntl
import os
import pty
import shlex
import signal
import subprocess
import sys
import termios

from exec_support import PY, child, exec_argv, run_exec, start_exec, summary

from helpers import Db, app_env
from runtracker.exec import oom, wrapper


def test_exit_0_records_success_and_exits_0(tmp_path, db_url):
    """A command that exits 0: one run, `success`, exit code 0; its output passes through."""
    result = run_exec(tmp_path, db_url, "--", PY, "-c", "print('synced 40 members')")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"synced 40 members\n"
    assert result.stderr == b""
    db = Db(db_url)
    [run] = db.runs()
    assert run["pipeline"] == "nikki" and run["outcome"] == "success" and run["exit_code"] == 0
    assert run["finished_at"] is not None and run["duration_ms"] is not None
    assert db.crash_rows(run["id"]) == []
    assert shlex.split(summary(run)["command"]) == [PY, "-c", "print('synced 40 members')"]


def test_exit_3_records_failure_with_the_exit_code_and_exits_3(tmp_path, db_url):
    """A command that exits 3: `failure`, exit code 3, a crash row saying so; the wrapper exits 3."""
    result = run_exec(tmp_path, db_url, "--", "sh", "-c", "echo partial work; exit 3")
    assert result.returncode == 3
    db = Db(db_url)
    [run] = db.runs()
    assert run["outcome"] == "failure" and run["exit_code"] == 3
    assert summary(run)["kind"] == "exit"
    [crash] = db.crash_rows(run["id"])
    assert crash["error_message"] == "exited with code 3"


def test_command_not_found_exits_127_and_records_failure(tmp_path, db_url):
    """A command that does not exist: exit 127 as a shell, a clear message, a `failure` run saying why."""
    result = run_exec(tmp_path, db_url, "--", "no-such-command-xyz", "--flag")
    assert result.returncode == wrapper.EXIT_NOT_FOUND == 127
    assert result.stderr.decode() == "runtracker exec: no-such-command-xyz: command not found\n"
    db = Db(db_url)
    [run] = db.runs()
    assert run["outcome"] == "failure" and run["exit_code"] == 127
    assert summary(run)["kind"] == "not_found"
    assert db.crash_rows(run["id"])[0]["error_message"] == "no-such-command-xyz: command not found"


def test_command_not_executable_exits_126(tmp_path, db_url):
    """A file without the execute bit: exit 126 as a shell, a `failure` run naming the reason."""
    script = tmp_path / "sync.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = run_exec(tmp_path, db_url, "--", str(script))
    assert result.returncode == wrapper.EXIT_NOT_EXECUTABLE == 126
    assert b"cannot execute: Permission denied" in result.stderr
    [run] = Db(db_url).runs()
    assert run["outcome"] == "failure" and run["exit_code"] == 126
    assert summary(run)["kind"] == "not_executable"


def test_command_killed_by_sigkill_is_recorded_and_the_wrapper_dies_by_sigkill(tmp_path, db_url):
    """SIGKILL (the OOM killer's signal): `failure` naming SIGKILL; the parent of the wrapper sees -9."""
    code = "import os, signal; print('eating memory', flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    result = run_exec(tmp_path, db_url, "--", PY, "-c", code)
    assert result.returncode == -signal.SIGKILL
    assert result.stdout == b"eating memory\n"
    db = Db(db_url)
    [run] = db.runs()
    assert run["outcome"] == "failure" and run["exit_code"] is None
    assert summary(run)["signal"] == "SIGKILL" and summary(run)["kind"] == "signal"
    # Without a readable kernel log or cgroup counter the message says "(out of memory?)".
    assert db.crash_rows(run["id"])[0]["error_message"] in (oom.KILLED, oom.KILLED_MAYBE_OOM)


def test_command_dying_of_a_segfault_is_recorded_and_the_wrapper_dies_by_sigsegv(tmp_path, db_url):
    """A real segfault in the command: `failure` naming SIGSEGV; the wrapper dies by SIGSEGV too."""
    result = run_exec(tmp_path, db_url, "--", PY, "-c", "import ctypes; ctypes.string_at(0)")
    assert result.returncode == -signal.SIGSEGV
    db = Db(db_url)
    [run] = db.runs()
    assert run["outcome"] == "failure" and summary(run)["signal"] == "SIGSEGV"
    assert db.crash_rows(run["id"])[0]["error_message"] == "killed by SIGSEGV"
    # Dying by the signal skips atexit: the wrapper still removed its (empty) faulthandler file first.
    assert not list(tmp_path.glob("runtracker-crash-*"))


HANDLES_SIGTERM = """
import signal, sys, time
def on_term(signum, frame):
    print("child got SIGTERM, cleaning up", flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(60)
"""


def test_sigterm_sent_to_the_wrapper_reaches_the_command_which_decides(tmp_path, db_url):
    """SIGTERM to the wrapper is passed on; the command cleans up and exits 143; so does the wrapper."""
    proc = start_exec(tmp_path, db_url, "--", *child(tmp_path, HANDLES_SIGTERM))
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert out == b"child got SIGTERM, cleaning up\n"
    [run] = Db(db_url).runs()
    assert run["outcome"] == "failure" and run["exit_code"] == 143
    assert summary(run)["signals_received"] == ["SIGTERM"]


def test_sigterm_that_kills_the_command_kills_the_wrapper_by_sigterm_after_recording(tmp_path, db_url):
    """A command with the default SIGTERM disposition dies of the passed-on signal; the wrapper then too."""
    proc = start_exec(tmp_path, db_url, "--", PY, "-c", "import time; print('ready', flush=True); time.sleep(60)")
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    db = Db(db_url)
    [run] = db.runs()
    assert run["outcome"] == "failure" and summary(run)["signal"] == "SIGTERM"
    assert db.crash_rows(run["id"])[0]["error_message"] == (
        "killed by SIGTERM (received by runtracker exec and passed on)")


def test_sigint_without_a_terminal_is_passed_on_and_python_dies_of_it(tmp_path, db_url):
    """SIGINT to a wrapper with no terminal reaches the command (KeyboardInterrupt); both end by SIGINT."""
    proc = start_exec(tmp_path, db_url, "--", PY, "-c", "import time; print('ready', flush=True); time.sleep(60)")
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGINT
    assert b"KeyboardInterrupt" in err and b"KeyboardInterrupt" not in out  # the child's traceback, on stderr
    [run] = Db(db_url).runs()
    assert summary(run)["signal"] == "SIGINT" and summary(run)["signals_received"] == ["SIGINT"]


def test_timeout_sends_sigterm_then_sigkill_and_records_timeout(tmp_path, db_url):
    """Past --timeout a command ignoring SIGTERM gets SIGKILL after --kill-after; exit 124, run `timeout`."""
    # Started with SIGTERM ignored, which the command inherits from birth: no race with its start-up.
    result = run_exec(tmp_path, db_url, "--timeout", "1s", "--kill-after", "0.5s", "--", "sh", "-c", "sleep 60",
                      preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
    assert result.returncode == wrapper.EXIT_TIMEOUT == 124
    db = Db(db_url)
    [run] = db.runs()
    assert run["outcome"] == "failure"
    s = summary(run)
    assert s["timeout"] is True and s["kind"] == "timeout" and s["timeout_s"] == 1.0 and s["signal"] == "SIGKILL"
    assert db.crash_rows(run["id"])[0]["error_message"] == "timed out after 1s: sent SIGTERM, then SIGKILL after 0.5s"
    # One line on stderr says why (cron mails it): the command, the pipeline and run, what was done.
    assert result.stderr.decode() == (f"runtracker exec: sh -c 'sleep 60' (nikki, run {run['id']}) timed out after "
                                      "1s: sent SIGTERM, then SIGKILL after 0.5s; exit status 124\n")


def test_timeout_reaches_the_children_of_a_shell_script(tmp_path, db_url):
    """The timeout's SIGTERM goes to the command's descendants too, so a script's `sleep` does not linger."""
    result = run_exec(tmp_path, db_url, "--timeout", "0.5s", "--", "sh", "-c", "sleep 30; echo never")
    assert result.returncode == 124
    assert b"never" not in result.stdout
    db = Db(db_url)
    [run] = db.runs()
    assert summary(run)["timeout"] is True
    assert db.crash_rows(run["id"])[0]["error_message"].startswith("timed out after 0.5s: sent SIGTERM, the command")
    said = result.stderr.decode().splitlines()
    assert said[-1].startswith(f"runtracker exec: sh -c 'sleep 30; echo never' (nikki, run {run['id']}) timed out "
                               "after 0.5s: sent SIGTERM, the command then died of SIGTERM") and len(said) == 1, said


def test_one_megabyte_of_output_passes_through_unchanged_and_its_tail_is_kept(tmp_path, db_url):
    """1 MB of output: byte for byte on stdout; the last 10 KB (the default) stored with the run, from the first
    whole line in them (a line cut in half could be half a secret: docs/exec.md)."""
    code = """
import sys
out = sys.stdout.buffer
for i in range(16384):
    out.write(b"line %05d " % i + b"x" * 52 + b"\\n")
out.write(b"THE END\\n")
"""
    result = run_exec(tmp_path, db_url, "--", *child(tmp_path, code))
    assert result.returncode == 0
    expected = b"".join(b"line %05d " % i + b"x" * 52 + b"\n" for i in range(16384)) + b"THE END\n"
    assert len(expected) > 1024 * 1024
    assert result.stdout == expected
    db = Db(db_url)
    [run] = db.runs()
    tail = db.query("SELECT output_tail FROM runs WHERE id = ?", (run["id"],))[0]["output_tail"]
    last = expected[-10240:]
    assert tail == last[last.index(b"\n") + 1:].decode() and tail.startswith("line ")
    assert summary(run)["output_bytes"] == len(expected)


def test_invalid_utf8_binary_and_nul_output_pass_through_and_the_tail_is_clean_text(tmp_path, db_url):
    """Invalid UTF-8, NUL and binary bytes: unchanged on stdout; stored with replacement characters."""
    data = b"ok \xff\xfe bad \x00 nul \xe2\x82 cut \x89PNG\r\n\x1a\n caf\xc3\xa9\n"
    code = f"import sys; sys.stdout.buffer.write({data!r})"
    result = run_exec(tmp_path, db_url, "--tail", "1KB", "--", PY, "-c", code)
    assert result.returncode == 0
    assert result.stdout == data
    [run] = Db(db_url).runs()
    tail = Db(db_url).query("SELECT output_tail FROM runs WHERE id = ?", (run["id"],))[0]["output_tail"]
    assert tail == data.decode("utf-8", "replace").replace("\x00", "\ufffd")
    assert "\x00" not in tail and tail.endswith("café\n")


def test_tail_0_keeps_no_output(tmp_path, db_url):
    """--tail 0: the output still passes through; nothing is stored."""
    result = run_exec(tmp_path, db_url, "--tail", "0", "--", "echo", "hello")
    assert result.stdout == b"hello\n"
    [run] = Db(db_url).runs()
    assert Db(db_url).query("SELECT output_tail FROM runs WHERE id = ?", (run["id"],))[0]["output_tail"] is None


def test_the_command_gets_the_run_id_and_the_database_in_its_environment(tmp_path, db_url):
    """RUNTRACKER_RUN_ID, RUNTRACKER_DB and RUNTRACKER_PIPELINE are set for the command."""
    code = "import os; print(os.environ['RUNTRACKER_RUN_ID'], os.environ['RUNTRACKER_PIPELINE'])"
    result = run_exec(tmp_path, db_url, "--", PY, "-c", code, env={"RUNTRACKER_RUN_ID": "999"})
    [run] = Db(db_url).runs()
    assert result.stdout.decode().split() == [str(run["id"]), "nikki"]


def test_show_prints_the_output_tail(tmp_path, db_url):
    """`runtracker show` ends with the tail of the command's output."""
    run_exec(tmp_path, db_url, "--", "sh", "-c", "echo first; echo last line")
    [run] = Db(db_url).runs()
    shown = subprocess.run([sys.executable, "-m", "runtracker", "show", str(run["id"])], env=app_env(db_url),
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.rstrip().endswith("output (the end of it):\n  | first\n  | last line")


def test_an_unreachable_database_never_stops_the_command(tmp_path):
    """No database: the command still runs and its exit status is the wrapper's; a warning on stderr."""
    blocked = tmp_path / "file"
    blocked.write_text("")
    url = f"sqlite:///{blocked}/sub/dashboard.sqlite"  # a directory under a file: cannot be created
    result = run_exec(tmp_path, url, "--", "sh", "-c", "echo ran; exit 4")
    assert result.returncode == 4
    assert result.stdout == b"ran\n"
    assert b"running the command untracked" in result.stderr


def test_lock_with_an_unreachable_database_refuses_to_start(tmp_path):
    """--lock cannot be honoured without the database: the command does not run; exit 75."""
    blocked = tmp_path / "file"
    blocked.write_text("")
    url = f"sqlite:///{blocked}/sub/dashboard.sqlite"
    result = run_exec(tmp_path, url, "--lock", "--", "echo", "ran")
    assert result.returncode == wrapper.EXIT_LOCKED
    assert result.stdout == b""
    assert b"--lock cannot be honoured without the database" in result.stderr


def test_an_ignored_sigint_stays_ignored_for_the_command(tmp_path, db_url):
    """A wrapper started with SIGINT ignored (nohup, `cmd &` in a script) leaves it ignored for the command."""
    code = "import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"
    result = run_exec(tmp_path, db_url, "--", PY, "-c", code,
                      preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert result.stdout == b"True\n"
    assert os.environ.get("RUNTRACKER_RUN_ID") is None


COUNTS_SIGINT = """
import os, signal, sys, time
# The wakeup fd gets one byte per delivery at the C level: two SIGINTs are counted as two even when Python
# would run its handler only once for them.
r, w = os.pipe()
os.set_blocking(w, False)
signal.set_wakeup_fd(w)
signal.signal(signal.SIGINT, lambda signum, frame: None)
print("ready", flush=True)
os.set_blocking(r, True)
seen = os.read(r, 1)
time.sleep(0.5)  # a second SIGINT, if one were coming, arrives here
os.set_blocking(r, False)
try:
    seen += os.read(r, 100)
except BlockingIOError:
    pass
print("SIGINTs:", len(seen), flush=True)
sys.exit(130)
"""


def test_ctrl_c_on_a_terminal_reaches_the_command_once(tmp_path, db_url):
    """Ctrl-C on the controlling terminal: the command (same process group) gets one SIGINT, not two."""
    master, slave = pty.openpty()

    def take_terminal() -> None:  # in the wrapper, after setsid: the pty becomes its controlling terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(exec_argv("--", *child(tmp_path, COUNTS_SIGINT)), env=app_env(db_url), cwd=tmp_path,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=take_terminal)
    os.close(slave)
    output = b""
    try:
        while b"ready" not in output:
            output += os.read(master, 1024)
        os.write(master, b"\x03")  # the terminal's interrupt character
        proc.wait(timeout=30)
        while True:
            try:
                chunk = os.read(master, 1024)
            except OSError:  # EIO: every process holding the terminal has exited
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert b"SIGINTs: 1" in output
    assert proc.returncode == 130
    [run] = Db(db_url).runs()
    assert run["exit_code"] == 130 and summary(run)["signals_received"] == ["SIGINT"]
    assert Db(db_url).crash_rows(run["id"])[0]["error_message"] == "exited with code 130"


def test_who_started_the_run_is_recorded_with_it(tmp_path, db_url):
    """$RUNTRACKER_STARTED_BY (the dashboard's Start button sets it) goes into runs.started_by; unset, NULL."""
    assert run_exec(tmp_path, db_url, "--", "true", env={"RUNTRACKER_STARTED_BY": "dashboard:alice"}).returncode == 0
    assert run_exec(tmp_path, db_url, "--", "true").returncode == 0
    assert [r["started_by"] for r in Db(db_url).runs()] == ["dashboard:alice", None]
