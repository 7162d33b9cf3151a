"""A damaged exported file (.onnx, .pt2, .ts) is named in one line by every command that loads
one (`info`, `classify --engine`, `features --engine`), never a traceback: empty, truncated,
random bytes, metadata that is not JSON, and, caught by the checksum of the weights its card
records, a file whose weights changed in place yet still parses. A file exported before the
checksum existed still loads, and `info` says none was recorded."""

import json
import warnings

import numpy as np
import pytest
import torch

from cnn3d.cli import main
from cnn3d.models import load_model
from helpers import family_checkpoint, frames_with_index, write_mp4

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow

SUFFIXES = (".onnx", ".pt2", ".ts")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A checkpoint, a short video, and the checkpoint exported in each format."""
    root = tmp_path_factory.mktemp("exported")
    ck = family_checkpoint(root, "resnet", 10, {"widen_factor": 0.25})
    for suffix in SUFFIXES:
        assert main(["export", str(ck), str(root / f"model{suffix}")]) == 0
    video = root / "clip.mp4"
    write_mp4(video, frames_with_index(16, 48, 64))
    return root, ck, video


def with_card(source, target, change):
    """Rewrite `source` as `target` with its `cnn3d` metadata text changed by `change`, the
    weights untouched (through each format's own library, not cnn3d)."""
    if source.suffix == ".onnx":
        proto = onnx.load(str(source))
        [entry] = [p for p in proto.metadata_props if p.key == "cnn3d"]
        entry.value = change(entry.value)
        onnx.save(proto, str(target))
    elif source.suffix == ".pt2":
        extra = {"cnn3d.json": ""}
        program = torch.export.load(str(source), extra_files=extra)
        card = change(extra["cnn3d.json"])
        torch.export.save(program, str(target), extra_files={"cnn3d.json": card})
    else:
        extra = {"cnn3d.json": ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(source), _extra_files=extra)
            card = change(extra["cnn3d.json"])
            torch.jit.save(module, str(target), _extra_files={"cnn3d.json": card})


def with_a_weight_changed(ck, source, target):
    """`source` with one bit of the classifier's bias flipped where the file stores it (found by
    its bytes: every format keeps the final linear layer as it is, while the convolutions have
    BatchNorm folded in; the bias, unlike a weight, reaches the logits whatever the clip)."""
    stored = load_model(ck).fc.bias.detach().numpy().tobytes()
    data = bytearray(source.read_bytes())
    at = data.find(stored)
    assert at >= 0, f"{source}: the classifier's bias is not stored as it is"
    data[at + 4 + 3] ^= 0x80  # the sign of bias[1] (float32, little-endian: the last byte)
    target.write_bytes(bytes(data))


def one_line_naming(capsys, path, *words):
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and "Traceback" not in captured.err, captured.err
    assert err.startswith("cnn3d ") and str(path) in err, err
    for word in words:
        assert word in err, err
    return err


def damaged_files(root, ck, suffix):
    """(name, path, the words its error must hold) of each kind of damage."""
    source = root / f"model{suffix}"
    data = source.read_bytes()
    files = {
        "empty": (b"", "empty file"),
        "truncated": (data[: len(data) // 2], "cannot be read"),
        "random": (np.random.default_rng(0).bytes(4096), "cannot be read"),
    }
    out = []
    for name, (content, words) in files.items():
        path = root / f"{name}{suffix}"
        path.write_bytes(content)
        out.append((name, path, words))
    path = root / f"bad-json{suffix}"
    with_card(source, path, lambda text: text[: len(text) // 2])
    out.append(("bad-json", path, "metadata is not valid JSON"))
    path = root / f"changed{suffix}"
    with_a_weight_changed(ck, source, path)
    out.append(("changed", path, "do not match the checksum recorded at export"))
    return out


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_info_names_each_damaged_file_in_one_line(made, capsys, suffix):
    root, ck, _ = made
    for _, path, words in damaged_files(root, ck, suffix):
        assert main(["info", str(path)]) == 2, path
        one_line_naming(capsys, path, words)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_weight_changed_in_place_still_parses_and_answers_differently(made, suffix):
    """What the checksum is for: the damage is invisible to the format's own reader."""
    root, ck, _ = made
    path = root / f"silent{suffix}"
    with_a_weight_changed(ck, root / f"model{suffix}", path)
    clips = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    if suffix == ".onnx":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        logits = torch.from_numpy(session.run(["logits"], {"clips": clips.numpy()})[0])
    elif suffix == ".pt2":
        logits = torch.export.load(str(path)).module()(clips)[1]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logits = torch.jit.load(str(path))(clips)[1]
    with torch.no_grad():
        expected = load_model(ck)(clips)
    assert not torch.allclose(logits.detach(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("command", ["classify", "features"])
def test_classify_and_features_name_a_damaged_file_before_any_video(
    made, tmp_path, capsys, command
):
    root, ck, video = made
    engines = {".onnx": ("onnxruntime", "openvino"), ".pt2": ("torch",), ".ts": ("auto",)}
    for suffix, names in engines.items():
        for name, path, words in damaged_files(root, ck, suffix)[2:]:  # random, JSON, weights
            for engine in names:
                if engine == "openvino" and name != "changed":
                    continue  # OpenVINO once, on the damage only the checksum sees
                if engine == "openvino":
                    pytest.importorskip("openvino")
                ending = ".json" if command == "classify" else ".h5"
                out = tmp_path / f"{command}-{name}-{engine}{suffix[1:]}{ending}"
                argv = [command, str(video), "--checkpoint", str(path), "--engine", engine]
                assert main([*argv, "--workers", "0", "--no-progress", "-o", str(out)]) == 2
                one_line_naming(capsys, path, words)
                assert not out.exists()


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_file_exported_before_the_checksum_still_loads_and_says_none_was_recorded(
    made, capsys, suffix
):
    root, _, video = made

    def without_checksum(text):
        card = json.loads(text)
        del card["weights_sha256"]
        return json.dumps(card)

    old = root / f"old{suffix}"
    with_card(root / f"model{suffix}", old, without_checksum)
    assert main(["info", str(old)]) == 0
    assert "weights: no checksum recorded" in capsys.readouterr().out
    assert main(["info", str(root / f"model{suffix}")]) == 0
    assert "weights: match the checksum recorded at export" in capsys.readouterr().out
    out = root / f"old{suffix}.json"
    argv = ["classify", str(video), "--checkpoint", str(old), "--workers", "0", "--no-progress"]
    assert main([*argv, "-o", str(out)]) == 0
    assert len(json.loads(out.read_text())[0]["clips"]) == 2  # 16 frames: two 8-frame windows
