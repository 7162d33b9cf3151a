#!/usr/bin/env bash
# The device check: one short run on a GPU machine that records every figure of BENCHMARKS.md's
# GPU section, from a fresh clone, in about 8 minutes on an H100/H200.
#
#     benchmarks/device_check.sh OUT            # on the GPU machine
#     benchmarks/device_check.sh --dry-run OUT  # CPU, tiny sizes, a minute (part of `make test`)
#
# 1. Python: $CNN3D_PYTHON if set; .venv's if `make install` made one; else a python3 that has torch (a GPU image
#    without network), with PyAV and simplejpeg taken from wheels in .whl/ if it lacks them
#    (fetch them beforehand: pip download --only-binary=:all: av simplejpeg -d .whl); else
#    `make install`.
# 2. The tests marked `cuda` (tests/test_cuda.py): bf16 steps against the CPU's fp32 ones, the
#    uint8 path on the GPU, classify/features against the CPU, one-GPU torchrun runs.
# 3. `cnn3d benchmark model`: ResNet-18 (torchvision's r3d_18 beside), ResNet-50, R(2+1)D-18 at
#    16x112x112, fp32 and bf16, channels_last and contiguous.
# 4. A Kinetics-like set (320x240; H.264 mp4, JPEG folders, HDF5) and `cnn3d benchmark loader`
#    with 8 and 16 workers on each, then `cnn3d benchmark train` on HDF5.
# OUT gets log.txt (everything printed), gpu.txt, cuda_tests.xml and figures.json (every row of
# every benchmark, the machine, and each step's exit status); a step that fails is recorded and
# the next one runs.
set -u -o pipefail

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT=${1:?usage: benchmarks/device_check.sh [--dry-run] OUT}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cnn3d-device-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
LOG="$OUT/log.txt"
: >"$LOG"
STATUS="$WORK/status.tsv"
: >"$STATUS"

say() { echo "== $*" | tee -a "$LOG"; }

# step NAME SECONDS COMMAND...: run it under a time limit, log it, record its exit status
step() {
    local name=$1 limit=$2
    shift 2
    say "$name: $*"
    local started=$SECONDS
    timeout --signal=TERM --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - started))" >>"$STATUS"
    say "$name: exit $rc after $((SECONDS - started)) s"
}

if [ -n "${CNN3D_PYTHON:-}" ]; then
    PY=$CNN3D_PYTHON
elif [ -x .venv/bin/python ]; then
    PY=$ROOT/.venv/bin/python
elif python3 -c "import torch" 2>/dev/null; then
    PY=$(command -v python3)
    if ! "$PY" -c "import av, simplejpeg" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" .whl/*.whl
        export PYTHONPATH="$WORK/site"
    fi
else
    make install | tee -a "$LOG"
    PY=$ROOT/.venv/bin/python
fi
export PYTHONPATH="$ROOT/src:$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
CNN3D=("$PY" -m cnn3d)

{ nvidia-smi 2>&1 || echo "no nvidia-smi: no GPU driver here"; } >"$OUT/gpu.txt"
"$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))" 2>&1 | tee -a "$LOG"
"$PY" -c "import av, simplejpeg, h5py" 2>&1 | tee -a "$LOG" ||
    say "PyAV, simplejpeg or h5py is missing: the video steps will fail (see the header)"

if [ "$DRY" = 1 ]; then
    DEVICE=cpu
    MODEL=(--batch-size 2 --sample-size 16 --clip-length 4 --steps 1 --warmup 1)
    DEPTHS=(resnet:10)
    COMPARE=(--compare r3d_18)
    SET=(--per-class 4 --frames 24 --height 48 --width 64 --jobs 2)
    LOADER=(--batch-size 4 --sample-size 16 --clip-length 4 --batches 3 --workers 0 1)
    TRAIN=(--batch-size 4 --sample-size 16 --clip-length 4 --steps 3 --batches 2 --workers 1
        --model-depth 10 --warmup 1)
else
    DEVICE=cuda
    MODEL=(--batch-size 32 --sample-size 112 --clip-length 16 --steps 20 --warmup 5)
    DEPTHS=(resnet:18 resnet:50 resnet2p1d:18)
    COMPARE=(--compare r3d_18)
    SET=(--per-class 40 --frames 150 --jobs 16)
    LOADER=(--batch-size 32 --batches 40 --workers 8 16 --max-seconds 30)
    TRAIN=(--batch-size 32 --steps 200 --workers 16 --precision bf16 --max-seconds 60)
fi

step cuda_tests 240 "$PY" -m pytest -p no:cacheprovider -m cuda tests/test_cuda.py -rs \
    --junitxml="$OUT/cuda_tests.xml"

for spec in "${DEPTHS[@]}"; do
    family=${spec%%:*}
    depth=${spec##*:}
    extra=()
    if [ "$spec" = "${DEPTHS[0]}" ]; then extra=("${COMPARE[@]}"); fi
    step "model_${family}${depth}" 150 "${CNN3D[@]}" benchmark model --model "$family" \
        --model-depth "$depth" --device "$DEVICE" "${MODEL[@]}" --precision fp32 bf16 \
        --memory-format channels_last contiguous "${extra[@]}" --max-seconds 20 \
        -o "$WORK/model_${family}${depth}.json"
done

step kinetics_like 180 "$PY" benchmarks/kinetics_like.py "$WORK/set" "${SET[@]}"
for fmt in mp4/videos jpg hdf5; do
    name=loader_${fmt%%/*}
    step "$name" 120 "${CNN3D[@]}" benchmark loader --video-path "$WORK/set/$fmt" \
        --annotation-path "$WORK/set/annotations.json" --device "$DEVICE" "${LOADER[@]}" \
        -o "$WORK/$name.json"
done
step train_hdf5 150 "${CNN3D[@]}" benchmark train --video-path "$WORK/set/hdf5" \
    --annotation-path "$WORK/set/annotations.json" --device "$DEVICE" "${TRAIN[@]}" \
    -o "$WORK/train_hdf5.json"

# every figure in one file
"$PY" - "$WORK" "$OUT/figures.json" "$DRY" <<'EOF'
import json, sys
from pathlib import Path

work, out, dry = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
steps = [line.split("\t") for line in (work / "status.tsv").read_text().splitlines()]
figures = {"dry_run": dry, "steps": {n: {"exit": int(rc), "seconds": int(s)} for n, rc, s in steps}}
for part in sorted(work.glob("*.json")):
    figures[part.stem] = json.loads(part.read_text())
out.write_text(json.dumps(figures, indent=1))
failed = [n for n, rc, _ in steps if rc != "0"]
print(f"figures in {out}; steps failed: {', '.join(failed) or 'none'}")
EOF
if grep -qv $'\t0\t' "$STATUS"; then exit 1; fi
