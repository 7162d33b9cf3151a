"""Dense optical flow between consecutive frames, as `cnn3d prepare flow` stores it: two 8-bit
images per frame pair (x, y), displacements of -BOUND..BOUND pixels mapped linearly onto 0..255.

Two methods, both OpenCV's, both on greyscale frames:
- `dis` (the default): DIS, medium preset; in the plain `opencv-python-headless` wheel. Fast
  (tens of frames per second per core at 320x240).
- `tvl1`: Dual TV-L1, the flow the field's I3D flow streams and their released features were
  computed with (DeepMind's kinetics-i3d; TSN's dense_flow and open-mmlab's denseflow, which use
  OpenCV's CUDA TV-L1 with its default parameters). Here OpenCV's CPU implementation with the
  same defaults, pinned in `TVL1_PARAMETERS`; it is in the contrib wheel only
  (`opencv-contrib-python-headless`, the `tvl1` extra) and costs 1-2 s per 320x240 frame pair
  on one core (benchmarks/flow.py), 80-180 times DIS medium.

With BOUND 20 the stored value v gives I3D's flow input through the `i3d` normalisation
(v / 255 * 2 - 1 == clip(flow, -20, 20) / 20, to within 1/255: half a quantisation step).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import UsageError

BOUND = 20.0  # pixels of displacement that map to 0 and 255
METHODS = ("dis", "tvl1")
FLOW_EXTRA = "pip install -e '.[flow]' (opencv-python-headless)"
TVL1_EXTRA = (
    "pip install -e '.[tvl1]' (opencv-contrib-python-headless; uninstall "
    "opencv-python-headless first: both wheels install the cv2 package)"
)
# OpenCV's defaults, in the order `cv2.optflow.DualTVL1OpticalFlow_create` takes them: tau,
# lambda, theta, scales, warps, epsilon, inner iterations, outer iterations (30 x 10 = the CUDA
# version's 300), scale step, gamma, median filter size (CPU only), use an initial flow
TVL1_PARAMETERS = (0.25, 0.15, 0.3, 5, 5, 0.01, 30, 10, 0.8, 0.0, 5, False)

Estimator = Callable[[np.ndarray, np.ndarray], np.ndarray]  # grey a, grey b -> [H, W, 2] px


def _opencv():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def check_method(method: str, job: str = "prepare flow") -> None:
    """A one-line error when `method` is unknown or its OpenCV is not installed (checked before
    any work)."""
    if method not in METHODS:
        raise UsageError(f"{job}: --method must be one of {', '.join(METHODS)}, not {method!r}")
    cv2 = _opencv()
    if method == "tvl1":
        if not hasattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create"):
            # the plain wheel over a removed contrib one leaves `cv2.optflow` as an empty
            # namespace: ask for the function, not the module
            raise UsageError(
                f"{job} --method tvl1 needs OpenCV's contrib module (cv2.optflow), not "
                f"installed: {TVL1_EXTRA}"
            )
    elif cv2 is None:
        raise UsageError(f"{job} needs OpenCV, not installed: {FLOW_EXTRA}")


def estimator(method: str = "dis") -> Estimator:
    """A function from two uint8 greyscale frames to their flow in pixels, [H, W, 2] float32."""
    check_method(method)
    import cv2

    if method == "tvl1":
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(*TVL1_PARAMETERS)
        return lambda a, b: tvl1.calc(a, b, None)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return lambda a, b: dis.calc(a, b, None)


def to_8bit(displacement: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """Displacements in pixels -> uint8: -bound..bound linearly onto 0..255, clipped, rounded
    half to even (as dense_flow's cvRound)."""
    scaled = (np.clip(displacement, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.round(scaled).astype(np.uint8)


def compute_flow(
    frames: list[np.ndarray], bound: float = BOUND, method: str = "dis"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Flow between consecutive RGB frames, converted to greyscale first: `len(frames) - 1`
    pairs of uint8 (x, y) images, as TSN/denseflow number them (pair i is the motion from frame
    i to frame i + 1)."""
    flow_of = estimator(method)
    import cv2

    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    out = []
    for a, b in zip(gray[:-1], gray[1:], strict=True):
        flow = flow_of(a, b)
        out.append((to_8bit(flow[..., 0], bound), to_8bit(flow[..., 1], bound)))
    return out
