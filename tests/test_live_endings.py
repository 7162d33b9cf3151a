"""How `classify --live` ends and says so: a source that never gives a frame (nothing sent, data
that does not decode) exits 1 within --stall-timeout, in words ("no data within
--stall-timeout", "real-time factor n/a"); Ctrl-C and SIGTERM say "stopping", do not reconnect
and exit 130 / 143; -o does not append to another run's file; a reconnect starts a new
`stream_segment` (windows and smoothing start again); the slot of one hands over the newest
window."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import cnn3d.inference.live as live
from cnn3d.cli import main
from cnn3d.data.transforms import EvalTransform
from helpers import free_port

pytestmark = pytest.mark.slow
SRC = str(Path(__file__).resolve().parents[1] / "src")


def argv_for(source, checkpoint, *extra):
    return ["classify", "--live", str(source), "--checkpoint", str(checkpoint), "--no-amp",
            "--window-stride", "4", *extra]  # fmt: skip


def test_a_udp_port_nobody_sends_to_exits_1_within_the_stall_timeout(
    stream,
    tmp_path,
    capsys,
):
    _, checkpoint = stream
    source = f"udp://127.0.0.1:{free_port()}"
    out = tmp_path / "none.jsonl"
    start = time.monotonic()
    argv = argv_for(source, checkpoint, "-o", str(out), "--stall-timeout", "0.5")
    assert main([*argv, "--reconnects", "1"]) == 1
    took = time.monotonic() - start
    err = capsys.readouterr().err
    # two openings of 0.5 s and a 0.5 s backoff; the defaults took about 45 s
    assert took < 10, err
    assert f"waiting for frames from {source}" in err
    assert "no data within --stall-timeout (0.5 s)" in err and "Errno" not in err
    assert "reconnecting in 0.5 s (1/1)" in err and "gave up after 1 reconnect(s)" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("live: no window to score:") and "real-time factor n/a" in last, err
    assert "nan" not in err and out.read_text() == ""


def test_a_fifo_of_garbage_exits_1_in_one_line(stream, tmp_path, capsys):
    _, checkpoint = stream
    fifo = tmp_path / "garbage.ts"
    os.mkfifo(fifo)

    def send():
        with open(fifo, "wb") as f:
            f.write(b"not a video\n" * 5000)

    sender = threading.Thread(target=send)
    sender.start()
    assert main(argv_for(fifo, checkpoint, "--stall-timeout", "1", "--reconnects", "0")) == 1
    sender.join()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"live: no window to score: {fifo}: cannot be opened"), err
    assert "0 frames" in last


@pytest.mark.parametrize("name,status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_stops_without_reconnecting_and_exits_128_plus_its_number(
    stream,
    tmp_path,
    name,
    status,
):
    _, checkpoint = stream
    source = f"udp://127.0.0.1:{free_port()}"
    argv = argv_for(source, checkpoint, "--stall-timeout", "3", "--reconnects", "5")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "cnn3d", *argv], env=env,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        lines = []
        for line in process.stderr:  # the model is loaded and the source being read
            lines.append(line)
            if "waiting for frames" in line:
                break
        time.sleep(1.0)  # the reader is in its first opening, which fails at 3 s
        process.send_signal(getattr(signal, name))
        _, rest = process.communicate(timeout=30)
    finally:
        process.kill()
    err = "".join(lines) + rest
    assert process.returncode == status, err
    assert "live: stopping" in err and "checkpoint" not in err
    assert f"stopped by {name}" in err
    assert "reconnecting" not in err  # the opening in flight was the last


def test_o_refuses_another_runs_file_and_a_name_that_is_not_json_lines(
    stream,
    tmp_path,
    capsys,
):
    ts, checkpoint = stream
    earlier = tmp_path / "earlier.jsonl"
    earlier.write_text('{"window": 0}\n')
    assert main(argv_for(ts, checkpoint, "-o", str(earlier), "--max-windows", "2")) == 2
    err = capsys.readouterr().err
    assert "exists and holds lines of another run; give --append" in err
    assert len(err.strip().splitlines()) == 1 and earlier.read_text() == '{"window": 0}\n'
    assert main(argv_for(ts, checkpoint, "-o", str(tmp_path / "labels.h5"))) == 2
    assert "--live writes JSON lines: name the file .jsonl" in capsys.readouterr().err
    assert not (tmp_path / "labels.h5").exists()
    argv = argv_for(ts, checkpoint, "-o", str(earlier), "--max-windows", "2", "--append")
    assert main(argv) == 0
    lines = earlier.read_text().splitlines()
    assert lines[0] == '{"window": 0}' and [json.loads(x)["window"] for x in lines[1:]] == [0, 1]


def fake_openings(monkeypatch, openings):
    """frames_of replaced: opening k gives `openings[k]` frames (values 10k + i), then stalls."""
    calls = []

    def frames_of(source, config, short_side):
        k = len(calls)
        calls.append(k)
        if k >= len(openings):
            raise ConnectionError(f"{source}: no data")
        for i in range(openings[k]):
            time.sleep(0.02)  # paced: the scorer keeps up, nothing is skipped
            yield np.full((8, 8, 3), 10 * k + i, dtype=np.uint8), 0.04 * i
        raise ConnectionError(f"{source}: no data")

    monkeypatch.setattr(live, "frames_of", frames_of)


class Spec:
    clip_length, sample_size = 4, 8


def score_by_mean(clip):
    """Class probabilities that follow the clip's mean value (a known function of its frames)."""
    m = clip.float().mean() / 100
    return torch.stack([m, 1 - m])


def test_a_reconnect_starts_a_new_segment_where_windows_and_smoothing_start_again(monkeypatch):
    fake_openings(monkeypatch, [6, 6])
    entries = []
    config = live.LiveConfig(window_stride=2, reconnects=1, backoff_s=0.01, smoothing="mean:3",
                             topk=2)  # fmt: skip
    stats = live.classify_live("udp://fake", score_by_mean, Spec, ["hi", "lo"], config,
                               entries.append, log=lambda line: None)  # fmt: skip
    assert stats.reconnects == 2 and stats.skipped == 0
    # each opening of 6 frames: windows at its frames 0 and 2 (4 frames each, stride 2)
    assert [(e["stream_segment"], e["first_frame"]) for e in entries] == [
        (0, 0), (0, 2), (1, 6), (1, 8)
    ]  # fmt: skip
    # the second segment's first window holds its own frames only: values 10..13, mean 11.5
    first = entries[2]
    assert {t["label"]: t["score"] for t in first["top_k"]}["hi"] == pytest.approx(0.115)
    # smoothing starts again there: the mean of that window alone, then of the segment's two
    assert first["smoothed_top_k"] == first["top_k"]
    second = {t["label"]: t["score"] for t in entries[3]["smoothed_top_k"]}
    assert second["hi"] == pytest.approx((0.115 + 0.135) / 2)


def test_the_slot_hands_over_the_newest_waiting_window():
    """Nobody takes while four windows complete: the one taken is the last, three skipped."""
    config = live.LiveConfig(window_stride=1)
    stats = live.LiveStats()
    reader = live.Reader("udp://fake", config, 2, 1, EvalTransform(8, "center"), 8, stats)
    for value in range(5):  # windows complete at frames 2, 3, 4, 5
        reader.add(np.full((8, 8, 3), value, dtype=np.uint8), value / 25)
    reader.done = True
    window = reader.take()
    assert (window.index, window.first_frame) == (3, 3) and stats.skipped == 3
    assert window.clip[:, :, 0, 0].tolist() == [[3, 4]] * 3  # frames 3 and 4, in order
    assert reader.take() is None
