import json
from pathlib import Path

import pytest
import torch

from cnn3d.models import build_model, count_parameters, list_models, releases
from cnn3d.models.checkpoint import infer_architecture, normalise_keys

# A copy of shared/reference/checkpoint-keys.json: the exact layouts of the released files.
KEYS_FILE = Path(__file__).parent / "data" / "checkpoint-keys.json"

# The class count each released variant shipped with, and the torchvision stem shapes.
FEATURE_WIDTHS = {
    ("resnet", 18): 512,
    ("resnet", 34): 512,
    ("resnet", 50): 2048,
    ("resnet", 200): 2048,
    ("wideresnet", 50): 2048,
    ("resnext", 101): 2048,
    ("densenet", 121): 1024,
    ("densenet", 169): 1664,
    ("densenet", 201): 1920,
    ("densenet", 264): 2688,
    ("resnet2p1d", 18): 512,
    ("resnet2p1d", 50): 2048,
}


def reference_keys() -> dict:
    return json.loads(KEYS_FILE.read_text())


def meta_state(entries, prefix=""):
    with torch.device("meta"):
        return {prefix + k: torch.empty(shape) for k, shape in entries}


@pytest.mark.parametrize("variant", sorted(json.loads(KEYS_FILE.read_text())))
def test_released_layout_matches_model_exactly(variant):
    """Every released variant's keys and shapes, mapped to cnn3d names, equal the built model's."""
    entries = reference_keys()[variant]
    prefix = "module." if variant.startswith("old_") else ""
    release = releases.detect(meta_state(entries, prefix), variant)  # mc3_18: a release layout
    if release is not None:
        state, family, depth = release.state, release.family, release.depth
        n_classes, options = release.n_classes, release.options
    else:
        state, layout = normalise_keys(meta_state(entries, prefix))
        family, depth, n_classes, options = infer_architecture(state, layout)
    with torch.device("meta"):
        model = build_model(family, depth, n_classes, **options)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    assert list(got) == list(expected)  # same keys, same registration order
    assert got == expected
    name = variant.split("_")[1]
    if not variant.startswith("torchvision"):
        assert f"{family}-{depth}" == name.replace("resnet-", "resnet-")


def test_inferred_options_of_released_variants():
    ref = reference_keys()

    def infer(v):
        prefix = "module." if v.startswith("old_") else ""
        return infer_architecture(*normalise_keys(meta_state(ref[v], prefix)))

    assert infer("old_resnet-18_A")[3]["shortcut"] == "A"
    assert infer("old_resnet-34_A")[:3] == ("resnet", 34, 400)
    assert infer("new_resnet-50_B")[:3] == ("resnet", 50, 700)
    assert infer("old_resnext-101_B_c32")[3]["cardinality"] == 32
    assert infer("old_resnext-101_B_c32")[3]["stem_width"] == 64
    assert infer("old_wideresnet-50_B_k2")[3]["widen_factor"] == 2
    assert infer("old_preresnet-200_B")[:2] == ("preresnet", 200)
    tv = infer("torchvision_r2plus1d_18")
    assert tv[3] == {
        "n_input_channels": 3,
        "conv1_t_size": 3,
        "no_max_pool": True,
        "stem_mid_width": 45,
        "per_block_mid": True,
    }
    assert infer("torchvision_r3d_18")[3]["conv1_t_size"] == 3


@pytest.mark.parametrize("family,depth", list_models())
def test_every_family_builds_and_runs(family, depth):
    with torch.device("meta"):
        model = build_model(family, depth, n_classes=7)
        x = torch.empty(2, 3, 16, 112, 112)
        # the features that forward computes on its way (a meta forward of a deep network is
        # most of this test's time; one where forward does not go through forward_features)
        seen = []
        forward_features = model.forward_features
        model.forward_features = lambda clips: seen.append(forward_features(clips)) or seen[-1]
        assert model(x).shape == (2, 7)
        features = seen[0] if seen else forward_features(x)
    assert features.shape[1] == model.num_features
    if (family, depth) in FEATURE_WIDTHS:
        assert model.num_features == FEATURE_WIDTHS[(family, depth)]


@pytest.mark.parametrize(
    "family,depth,options",
    [
        ("resnet", 10, {}),
        ("resnet", 18, {"shortcut": "A"}),
        ("preresnet", 10, {}),
        ("resnet2p1d", 10, {}),
        ("densenet", 121, {}),
        ("resnext", 50, {"cardinality": 8}),
        ("wideresnet", 50, {"widen_factor": 1}),
    ],
)
def test_real_forward_small_input(family, depth, options):
    model = build_model(family, depth, n_classes=5, **options).eval()
    x = torch.randn(1, 3, 8, 32, 40)  # any clip length and size works (adaptive pooling)
    with torch.no_grad():
        assert model(x).shape == (1, 5)


def test_options_change_the_network():
    x = torch.randn(1, 2, 8, 32, 32)
    model = build_model(
        "resnet",
        10,
        n_classes=3,
        n_input_channels=2,
        conv1_t_size=3,
        conv1_t_stride=2,
        no_max_pool=True,
        widen_factor=0.5,
    ).eval()
    assert model.conv1.weight.shape == (32, 2, 3, 7, 7)
    with torch.no_grad():
        assert model(x).shape == (1, 3)
    assert model.num_features == 256
    with pytest.raises(ValueError, match="unknown model family"):
        build_model("vgg", 16)
    with pytest.raises(ValueError, match="no depth 19"):
        build_model("resnet", 19)
    with pytest.raises(ValueError, match="bogus"):
        build_model("resnet", 18, bogus=1)


def test_parameter_counts_match_the_original():
    with torch.device("meta"):
        counts = {
            ("resnet", 50, 400): 47_018_576,
            ("resnext", 101, 400): 48_340_816,
            ("wideresnet", 50, 400): 158_248_272,
            ("preresnet", 200, 400): 127_419_088,
            ("resnet2p1d", 18, 700): 33_575_064,
            ("resnet", 18, 700): 33_563_004,
        }
        for (family, depth, n), expected in counts.items():
            assert count_parameters(build_model(family, depth, n)) == expected


def test_shortcut_a_lets_gradients_flow():
    model = build_model("resnet", 10, n_classes=2, shortcut="A")
    x = torch.randn(2, 3, 8, 32, 32, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any("downsample.0" in k for k in model.state_dict())


def test_reset_classifier():
    for family, depth in [("resnet", 10), ("densenet", 121)]:
        model = build_model(family, depth, n_classes=400)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        model.reset_classifier(11)
        head = getattr(model, model.classifier_name)
        assert head.out_features == 11
        after = model.state_dict()
        body = [k for k in before if not k.startswith(model.classifier_name)]
        assert all(torch.equal(before[k], after[k]) for k in body)


@pytest.mark.parametrize(
    "family,depth",
    [
        ("resnet", 10),
        ("resnet2p1d", 10),
        ("densenet", 121),
        ("preresnet", 10),
        ("resnext", 50),
        ("wideresnet", 50),
    ],
)
def test_bf16_channels_last_close_to_fp32(family, depth):
    options = {"cardinality": 8} if family == "resnext" else {}
    if family == "wideresnet":
        options = {"widen_factor": 0.5}
    model = build_model(family, depth, n_classes=10, **options).eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        ref = model.forward_features(x)
        fast_model = model.to(memory_format=torch.channels_last_3d)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = fast_model.forward_features(x.to(memory_format=torch.channels_last_3d))
    rel = (fast.float() - ref).norm() / ref.norm()
    assert rel < 2e-2


@pytest.mark.parametrize(
    "dtype, shape, kernel, stride",
    [
        ("bf16", (2, 16, 2, 5, 5), (3, 3, 3), 1),  # layer3 of a 16-frame 3D ResNet
        ("bf16", (2, 16, 4, 5, 5), (7, 7, 7), 1),  # a t=7 stem on a 4-frame input
        ("fp32", (2, 16, 7, 5, 5), (7, 3, 3), 2),  # a t=7, stride-2 stem on 7 frames
        # spatially tiny maps with enough frames: implicit padding, and still right
        ("bf16", (2, 16, 16, 1, 1), (3, 3, 3), 1),
        ("fp32", (2, 16, 9, 2, 2), (3, 3, 3), 1),
    ],
)
def test_conv3d_weight_gradient_right_on_small_inputs(dtype, shape, kernel, stride):
    # On this PyTorch build nn.Conv3d gets these weight gradients wrong on the CPU (1e35, NaN).
    from cnn3d.models.conv import Conv3d

    torch.manual_seed(0)
    padding = tuple(k // 2 for k in kernel)
    conv = Conv3d(16, 16, kernel, (stride, 1, 1), padding, bias=False)
    x = torch.randn(shape)
    for memory_format in (torch.contiguous_format, torch.channels_last_3d):
        conv.zero_grad()
        w64 = conv.weight.detach().double().requires_grad_()
        torch.nn.functional.conv3d(x.double(), w64, None, (stride, 1, 1), padding).sum().backward()
        conv_m = conv.to(memory_format=memory_format)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            y = conv_m(x.contiguous(memory_format=memory_format))
        y.float().sum().backward()
        rel = (conv.weight.grad.double() - w64.grad).abs().max() / w64.grad.abs().max()
        assert rel < (3e-2 if dtype == "bf16" else 1e-4)


@pytest.mark.parametrize("family", ["resnet", "resnet2p1d"])
def test_bf16_cpu_training_steps_are_reproducible(family):
    # 16 frames put 2-frame maps into layer3: before cnn3d's Conv3d, the weight gradients there
    # were garbage that changed from run to run.
    def run():
        torch.manual_seed(0)
        model = build_model(family, 10, n_classes=5, widen_factor=0.5)
        model = model.to(memory_format=torch.channels_last_3d)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        generator = torch.Generator().manual_seed(1)
        for _ in range(3):
            x = torch.randn(4, 3, 16, 32, 32, generator=generator)
            y = torch.randint(0, 5, (4,), generator=generator)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x.contiguous(memory_format=torch.channels_last_3d))
            loss = torch.nn.functional.cross_entropy(out.float(), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    first, second = run(), run()
    assert torch.isfinite(first).all() and first.abs().max() < 100
    assert torch.equal(first, second)


@pytest.mark.parametrize(
    "family,depth,options,all_folded",
    [
        ("resnet", 10, {}, True),
        ("resnet", 10, {"shortcut": "A"}, True),
        ("resnet2p1d", 10, {}, True),
        ("resnext", 50, {"cardinality": 8}, True),
        ("preresnet", 10, {}, False),  # BN before the convolutions: only the stem's folds
        ("densenet", 121, {}, False),
    ],
)
def test_batchnorm_folding_matches_a_float64_reference(family, depth, options, all_folded):
    from cnn3d.models.fold import fold_batchnorm

    torch.manual_seed(0)
    model = build_model(family, depth, n_classes=5, **options)
    for m in model.modules():  # trained-looking statistics, not the initial 0 / 1
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    n_bn = sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules())
    folded, n = fold_batchnorm(model, torch.randn(1, 3, 4, 16, 16))
    assert n == n_bn if all_folded else 1 <= n < n_bn
    left = sum(isinstance(m, torch.nn.BatchNorm3d) for m in folded.modules())
    assert left == n_bn - n
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules()) == n_bn  # a copy
    x = torch.randn(2, 3, 16, 48, 48)
    with torch.no_grad():
        want = model.double()(x.double())
        got = folded(x)
    assert ((got.double() - want).norm() / want.norm()) < 1e-5
