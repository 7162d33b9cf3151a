"""A reader that leaves early (`cnn3d info x.pth | head -1`) ends the command quietly: exit
141 (128 + SIGPIPE, what a shell reports), nothing on stderr, no traceback."""

import subprocess
import sys


def test_a_closed_pipe_ends_a_command_quietly_with_141():
    # stdout's reading end is closed before the command prints (importing cnn3d takes far
    # longer than closing it), so its first write finds no reader
    process = subprocess.Popen(
        [sys.executable, "-m", "cnn3d", "recipes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert err.decode() == ""
    assert process.returncode == 141


def test_main_returns_141_when_stdout_is_a_closed_pipe(monkeypatch, capsys):
    """In process: the flush of what a command printed fails, and stdout becomes devnull so the
    interpreter's own last flush cannot fail again."""
    import os

    from cnn3d.cli import main

    read_end, write_end = os.pipe()
    os.close(read_end)
    pipe = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", pipe)
    assert main(["recipes"]) == 141
    print("after", file=pipe)
    pipe.flush()  # now devnull: no error
    monkeypatch.undo()
    pipe.close()
