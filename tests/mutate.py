"""Mutation testing of the critical modules, each against its own test files (`make mutate`).

For each module, a scratch copy of the project (under `.mutate/<name>/`, git-ignored) gets a
`[tool.mutmut]` section that mutates that module alone and runs only the module's tests; mutmut
then runs, per mutant, the tests that reach the mutated function and stops at the first failure.
Survivors go to `.mutate/<name>.txt` with their diffs: kill each one a user could suffer from
with a test, and record the rest, with why they are harmless, in `tests/MUTATION.md`.

    python tests/mutate.py                 # every module (about an hour on 2 cores)
    python tests/mutate.py sampling index  # some of them
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODULES = {
    "normalization": ("src/cnn3d/normalization.py", ["test_references.py", "test_transforms.py"]),
    "sampling": ("src/cnn3d/data/sampling.py", ["test_sampling.py", "test_dataset.py"]),
    "transforms": ("src/cnn3d/data/transforms.py", ["test_transforms.py", "test_references.py"]),
    "metrics": ("src/cnn3d/evaluation/metrics.py", ["test_references.py"]),
    "index": ("src/cnn3d/data/index.py", ["test_index.py"]),
    "files": ("src/cnn3d/files.py", ["test_prepare.py", "test_output_names.py"]),
    "sources": ("src/cnn3d/data/sources/video.py", ["test_sources.py", "test_messy_media.py"]),
    "inference": (
        "src/cnn3d/inference/runner.py",
        ["test_inference.py", "test_references.py", "test_output_names.py"],
    ),
    "checkpoint": ("src/cnn3d/models/checkpoint.py", ["test_checkpoint.py", "test_models.py"]),
}


def run(name: str) -> list[str]:
    module, tests = MODULES[name]
    work = ROOT / ".mutate" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for part in ("src", "tests", "pyproject.toml"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, work / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, work / part)
    selection = ", ".join(f'"tests/{t}"' for t in tests)
    with open(work / "pyproject.toml", "a", encoding="utf-8") as f:
        f.write(
            "\n[tool.mutmut]\n"
            'source_paths = ["src"]\n'
            f'only_mutate = ["{module}"]\n'
            f"pytest_add_cli_args_test_selection = [{selection}]\n"
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-x", "-q"]\n'
            # torch's thread pools do not survive a fork from a process that used them
            'process_isolation = "forkserver"\n'
        )
    mutmut = [sys.executable, "-m", "mutmut"]
    subprocess.run([*mutmut, "run"], cwd=work, check=False, stdout=subprocess.DEVNULL)
    results = subprocess.run(
        [*mutmut, "results"], cwd=work, capture_output=True, text=True, check=False
    ).stdout
    bad = [line.strip() for line in results.splitlines() if line.strip()]
    report = []
    for line in bad:
        mutant, _, status = line.rpartition(": ")
        diff = subprocess.run(
            [*mutmut, "show", mutant], cwd=work, capture_output=True, text=True, check=False
        ).stdout
        changed = [d for d in diff.splitlines() if d[:1] in "+-" and d[:3] not in ("---", "+++")]
        report.append(f"{mutant}: {status}\n" + "\n".join(f"    {d}" for d in changed))
    (ROOT / ".mutate" / f"{name}.txt").write_text("\n".join(report) + "\n", encoding="utf-8")
    return bad


def main() -> int:
    names = sys.argv[1:] or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        print(f"unknown module(s) {unknown}; choose from {', '.join(MODULES)}", file=sys.stderr)
        return 2
    for name in names:
        bad = run(name)
        print(f"{name}: {len(bad)} mutant(s) not killed (see .mutate/{name}.txt)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
