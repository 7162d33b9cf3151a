"""Tushar-N/pytorch-resnet3d's ports of video-nonlocal-net's Caffe2 I3D ResNet-50
(`i3d_r50_kinetics.pth`, made by its `utils/convert_weights.py` from
`i3d_baseline_32x2_IN_pretrain_400k.pkl`; `i3d_r50_nl_kinetics.pth` from the non-local one): a
plain state_dict in its `I3Res50`'s keys, which are cnn3d's `I3DResNetNL`'s. The same file is
what GowthamGottimukkala/I3D_Feature_Extraction_resnet loads.

Told apart from the 2018/2020 ResNet-50 releases (stem 7x7x7, 1x1x1 then 3x3x3 bottlenecks) by
the 5x7x7 stem and the 3x1x1 / 1x3x3 convolutions of layer1's first block.
"""

from __future__ import annotations

from . import LAYOUTS, Layout, Release, State


def _shape(state: State, key: str):
    value = state.get(key)
    return tuple(value.shape) if value is not None else None


def matches(state: State) -> bool:
    return (
        _shape(state, "conv1.weight") == (64, 3, 5, 7, 7)
        and _shape(state, "layer1.0.conv1.weight") == (64, 64, 3, 1, 1)
        and _shape(state, "layer1.0.conv2.weight") == (64, 64, 1, 3, 3)
        and _shape(state, "layer4.0.conv1.weight") == (512, 1024, 1, 1, 1)
    )


def read(state: State, filename: str) -> Release:
    nonlocal_blocks = any(".nl." in k for k in state)
    n_classes = int(state["fc.weight"].shape[0]) if "fc.weight" in state else 400
    kind = "non-local" if nonlocal_blocks else "baseline"
    return Release(
        name=f"Tushar-N/pytorch-resnet3d I3D ResNet-50 ({kind}, video-nonlocal-net Caffe2 port)",
        family="i3d_nl",
        depth=50,
        n_classes=n_classes,
        state=dict(state),
        options={"nonlocal_blocks": True} if nonlocal_blocks else {},
        # the Caffe2 training's mean 114.75 / std 57.375 on 0-255 pixels: 0.45 / 0.225
        normalization="pytorchvideo",
        class_names="kinetics400" if n_classes == 400 else None,
        clip_length=16,
        sample_size=224,
    )


LAYOUTS.append(Layout("tushar-n-i3d-resnet50", matches, read))
