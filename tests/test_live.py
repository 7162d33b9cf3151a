"""`classify --live`: a stream sent at real-time pace over UDP (MPEG-TS to 127.0.0.1) or into
a FIFO is scored window by window with exactly `classify`'s scores for the same frames; a model
slower than the stream skips windows and counts every skip; a sender that stops and resumes is
reconnected."""

import json
import os
import socket
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from cnn3d.cli import main
from helpers import FPS, N_FRAMES, frames_with_code, free_port

pytestmark = pytest.mark.slow


def chunks(ts):
    data = ts.read_bytes()
    size = 7 * 188  # MPEG-TS over UDP: 7 packets per datagram
    return [data[i : i + size] for i in range(0, len(data), size)]


def wait_for_listener(port, timeout=30.0):
    """Until something has bound the UDP port (the receiver): binding it fails then."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                time.sleep(0.3)  # bound: let it start reading
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on udp port {port}")


def send_udp(ts, port, pause_at=None, pause_s=0.0):
    """Datagrams at the stream's real-time pace (its duration spread over its bytes), once
    the receiver listens."""
    wait_for_listener(port)
    parts = chunks(ts)
    gap = N_FRAMES / FPS / len(parts)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i, part in enumerate(parts):
            if pause_at is not None and i == int(pause_at * len(parts)):
                time.sleep(pause_s)
            s.sendto(part, ("127.0.0.1", port))
            time.sleep(gap)


def send_fifo(ts, fifo):
    parts = chunks(ts)
    gap = N_FRAMES / FPS / len(parts)
    with open(fifo, "wb") as f:
        for part in parts:
            f.write(part)
            f.flush()
            time.sleep(gap)


def windows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def classify_file(ts, checkpoint, tmp_path, stride):
    out = tmp_path / "file.json"
    argv = ["classify", str(ts), "--checkpoint", str(checkpoint), "--workers", "0"]
    argv += ["--no-amp", "--no-progress", "--window-stride", str(stride)]  # windows from 0
    assert main([*argv, "-o", str(out)]) == 0
    [entry] = json.loads(out.read_text())
    return {
        c["segment"][0]: dict(zip(entry["labels"], c["scores"], strict=True))
        for c in entry["clips"]
    }


def assert_same_scores(live, by_first_frame):
    for w in live:
        expected = by_first_frame[w["first_frame"] + 1]  # classify's segments are 1-based
        for item in w["top_k"]:
            assert item["score"] == pytest.approx(expected[item["label"]], abs=1e-5), w


def live_argv(source, checkpoint, out, *extra):
    return ["classify", "--live", str(source), "--checkpoint", str(checkpoint), "--no-amp",
            "--window-stride", "4", "--topk", "4", "-o", str(out), *extra]  # fmt: skip


def test_a_udp_stream_is_scored_as_classify_scores_the_same_frames(stream, tmp_path, capsys):
    ts, checkpoint = stream
    port = free_port()
    sender = threading.Thread(target=send_udp, args=(ts, port))
    sender.start()
    out = tmp_path / "live.jsonl"
    source = f"udp://127.0.0.1:{port}?overrun_nonfatal=1&fifo_size=1000000"
    assert (
        main(live_argv(source, checkpoint, out, "--stall-timeout", "1.5", "--reconnects", "0")) == 0
    )
    sender.join()
    live = windows(out)
    complete = (N_FRAMES - 8) // 4 + 1
    err = capsys.readouterr().err
    assert len(live) >= complete // 2, err
    assert live[0]["first_frame"] == 0 and live[0]["window"] == 0  # nothing lost at the start
    assert_same_scores(live, classify_file(ts, checkpoint, tmp_path, 4))
    times = [w["stream_time"] for w in live]
    assert times == sorted(times) and live[-1]["stream_time"] <= N_FRAMES / FPS
    assert all(w["latency_s"] >= 0 for w in live)
    assert "gave up after 0 reconnect(s)" in err and f"{N_FRAMES} frames" in err


def test_a_fifo_is_read_as_it_is_written(stream, tmp_path, capsys):
    ts, checkpoint = stream
    fifo = tmp_path / "pipe.ts"
    os.mkfifo(fifo)
    sender = threading.Thread(target=send_fifo, args=(ts, fifo))
    sender.start()
    out, folder = tmp_path / "live.jsonl", tmp_path / "annotated"
    argv = live_argv(fifo, checkpoint, out, "--smooth", "mean:3", "--render", str(folder))
    rendered = folder / "pipe.mp4"  # --render DIR, as without --live: DIR/<source name>.mp4
    umask = os.umask(0o027)
    try:
        assert main(argv) == 0
    finally:
        os.umask(umask)
    sender.join()
    assert rendered.stat().st_mode & 0o777 == 0o640  # the umask's mode, as every output
    live = windows(out)
    assert_same_scores(live, classify_file(ts, checkpoint, tmp_path, 4))
    assert "the end of the input" in capsys.readouterr().err
    with av.open(str(rendered)) as video:  # every frame, labelled from the first window on
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    assert len(frames) == N_FRAMES and frames[0].shape == (48, 64, 3)
    source = frames_with_code(N_FRAMES, 48, 64)[-1]  # its first block white: bit 0 of 99
    assert source[1, 1].min() == 255 and frames[-1][1, 1].max() < 30  # the label's dark box
    # smoothing: the mean of the last 3 windows' scores
    for k in range(2, len(live)):
        if [w["window"] for w in live[k - 2 : k + 1]] != list(
            range(live[k]["window"] - 2, live[k]["window"] + 1)
        ):
            continue
        label = live[k]["smoothed_top_k"][0]["label"]
        mean = np.mean(
            [
                next(i["score"] for i in w["top_k"] if i["label"] == label)
                for w in live[k - 2 : k + 1]
            ]
        )
        assert live[k]["smoothed_top_k"][0]["score"] == pytest.approx(mean, abs=1e-6)


def test_a_file_gives_classifys_windows_the_padded_last_one_included(stream, tmp_path):
    """100 frames, clips of 8 every 6: complete windows at 0, 6, ..., 90 (90 + 8 = 98 < 100),
    then classify's loop-padded window at 96 (frames 96-99 twice)."""
    ts, checkpoint = stream
    out = tmp_path / "live.jsonl"
    argv = ["classify", "--live", str(ts), "--checkpoint", str(checkpoint), "--no-amp",
            "--window-stride", "6", "--topk", "4", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    live = windows(out)
    assert [w["first_frame"] for w in live] == [*range(0, 91, 6), 96]
    assert [w["window"] for w in live] == list(range(17))
    by_first_frame = classify_file(ts, checkpoint, tmp_path, 6)
    assert sorted(by_first_frame) == [w["first_frame"] + 1 for w in live]  # the same windows
    assert_same_scores(live, by_first_frame)
    out.unlink()
    assert main([*argv, "--tail", "drop"]) == 0  # complete windows only
    assert [w["first_frame"] for w in windows(out)] == list(range(0, 91, 6))


def test_a_slow_model_skips_windows_and_counts_every_skip(stream, tmp_path, capsys):
    ts, checkpoint = stream
    slow = torch.nn.modules.module.register_module_forward_hook(
        lambda module, inputs, output: (
            time.sleep(0.5) if module.__class__.__name__ == "FeatureExtractor" else None
        )
    )
    out = tmp_path / "live.jsonl"
    try:
        assert main(live_argv(ts, checkpoint, out, "--realtime")) == 0
    finally:
        slow.remove()
    err = capsys.readouterr().err
    live = windows(out)
    complete = (N_FRAMES - 8) // 4 + 1  # a window every 4 frames: 0.16 s of stream
    skipped = complete - len(live)
    assert skipped > complete // 2, err  # 0.5 s per window: most are skipped
    assert f"{len(live)} windows scored, {skipped} skipped" in err
    assert len({w["window"] for w in live}) == len(live)
    # never more than about one scoring behind (a queue would reach 8 s by the end)
    assert all(w["latency_s"] < 2.5 for w in live)


def test_a_sender_that_stops_and_resumes_is_reconnected(stream, tmp_path, capsys):
    ts, checkpoint = stream
    port = free_port()
    sender = threading.Thread(target=send_udp, args=(ts, port, 0.5, 2.5))
    sender.start()
    out = tmp_path / "live.jsonl"
    source = f"udp://127.0.0.1:{port}?overrun_nonfatal=1&fifo_size=1000000"
    argv = live_argv(source, checkpoint, out, "--stall-timeout", "1", "--reconnects", "3")
    assert main(argv) == 0
    sender.join()
    err = capsys.readouterr().err
    assert "reconnecting in 0.5 s (1/3)" in err
    live = windows(out)
    assert max(w["stream_time"] for w in live) > 0.6 * N_FRAMES / FPS  # the second half too
    assert "reconnect(s)" in err


def test_live_needs_an_rgb_model_and_a_valid_smoothing(stream, tmp_path, capsys):
    ts, checkpoint = stream
    assert main(live_argv(ts, checkpoint, tmp_path / "o", "--smooth", "ema:2")) == 2
    assert "--smooth 'ema:2': give none, ema:A" in capsys.readouterr().err
    assert main(live_argv(tmp_path / "none.ts", checkpoint, tmp_path / "o")) == 2
    assert "none.ts: cannot be opened" in capsys.readouterr().err


def test_render_names_a_folder_with_and_without_live():
    """--render is a folder in both modes; with --live the stream's file is named for its
    source, and a FILE.mp4 (the older spelling) is still taken as the file."""
    from cnn3d.cli.classify import live_render_file

    assert live_render_file("out", "/data/cam.ts") == Path("out/cam.mp4")
    assert live_render_file("out", "-") == Path("out/stdin.mp4")
    assert live_render_file("out", "0") == Path("out/camera0.mp4")
    assert live_render_file("out", "rtsp://host:554/live/1?x=2") == Path("out/host_554_live_1.mp4")
    assert live_render_file("old/annotated.mp4", "-") == Path("old/annotated.mp4")
