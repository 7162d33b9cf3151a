"""The shape of the package: no import cycle (function-local imports included), no module reading
another's private names, functions short enough to read, and a command line that answers
`--help`, `--version` and argument errors without importing torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "cnn3d"
# other libraries' underscored names that cnn3d uses on purpose: PyTorch's tensor version
# counter, BatchNorm base class and the DataLoader's iterator of persistent workers (to stop
# them at a known moment), argparse's help-string hook and option list
FOREIGN_PRIVATE = {
    "_version",
    "_BatchNorm",
    "_iterator",
    "_shutdown_workers",
    "_get_help_string",
    "_actions",  # argparse's list of a parser's options: config keys are mapped to them
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str, node: ast.ImportFrom | None, package: str) -> list[str]:
    """The cnn3d modules an import statement loads (a package's `__init__` or a submodule)."""
    known = modules()
    if node is None:  # import a.b.c
        return [name] if name in known else []
    base = package.split(".")
    if node.level:
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("cnn3d"):
        return []
    found = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        found.append(sub if sub in known else target)
    return [m for m in found if m in known]


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in modules().items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    edges.update(resolve(alias.name, None, package))
            elif isinstance(node, ast.ImportFrom):
                edges.update(resolve("", node, package))
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ importing its own submodules is how packages are built
            if (
                node == nxt.rpartition(".")[0]
                and (PACKAGE.parent / Path(*node.split("."))).is_dir()
            ):
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert (
        "cnn3d.data.annotations" in graph and graph["cnn3d.training.loop"]
    )  # the walk sees modules
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = import_graph()
    graph["cnn3d.data.annotations"] = graph["cnn3d.data.annotations"] | {"cnn3d.data.index"}
    assert find_cycle(graph) is not None
    # a function-local import counts: the graph holds the one in cli's handlers
    assert "cnn3d.training.loop" in graph["cnn3d.cli.train"]


def test_no_module_reads_another_modules_private_names():
    problems = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or "cnn3d" in (node.module or "")):
                private = [a.name for a in node.names if a.name.startswith("_")]
                private = [p for p in private if not p.startswith("__")]
                if private:
                    problems.append(f"{name}:{node.lineno} imports {private}")
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                if node.attr.startswith("__") or node.attr in FOREIGN_PRIVATE:
                    continue
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                problems.append(f"{name}:{node.lineno} reads .{node.attr}")
    assert not problems, problems


def test_functions_fit_on_a_screen():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                declares_arguments = name.startswith("cnn3d.cli.") and node.name.startswith("add")
                if lines > 120 and not declares_arguments:
                    long.append(f"{name}.{node.name}: {lines} lines")
                if name == "cnn3d.training.loop" and node.name == "train":
                    assert lines <= 60, f"train() has {lines} lines"
    assert not long, long


MODULE_LINES = 600  # a module past this is doing more than one job: split it along them


def test_every_module_reads_in_one_sitting():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LINES}  # fmt: skip
    assert not long, f"modules over {MODULE_LINES} lines: {long}"


def test_no_test_file_imports_another():
    """Fixtures live in conftest.py, shared functions in helpers.py: a test file is read alone."""
    tests = Path(__file__).resolve().parent
    found = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0].startswith("test_")]
    assert not found, found


PROBE = """
import sys
from cnn3d.cli import main
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit:
        pass
print("TORCH" if "torch" in sys.modules else "NO TORCH")
"""


def test_help_version_and_argument_errors_answer_without_torch():
    argvs = [["--version"], ["--help"], ["train", "--batch-size", "0"], ["test", "--help"]]
    argvs += [[c, "--help"] for c in ("models", "convert", "train", "classify", "features")]
    argvs += [["prepare", k, "--help"] for k in ("ucf101", "kinetics", "frames", "flow")]
    argvs += [["features", "x.mp4", "--checkpoint", "m.pth", "-o", "f", "--window-stride", "0"]]
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(argvs=argvs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.stdout.strip().splitlines()[-1] == "NO TORCH", run.stdout[-2000:] + run.stderr
    assert "must be at least 1, not 0" in run.stderr  # the errors were answered


def test_the_help_names_every_model_family():
    from cnn3d.cli.train import FAMILIES as named
    from cnn3d.models import FAMILIES

    assert tuple(FAMILIES) == named


def test_only_cnn3d_errors_are_user_errors(capsys, monkeypatch):
    """A cnn3d error is one line with exit 2; any other exception is a bug and propagates; the
    environment switch shows the traceback of a user error."""
    import cnn3d.cli.models as models_command
    from cnn3d.cli import main
    from cnn3d.errors import UsageError

    def user_error(args):
        raise UsageError("x.json: the problem")

    def bug(args):
        raise ValueError("a bug")

    monkeypatch.setattr(models_command, "run", user_error)
    assert main(["models"]) == 2
    assert capsys.readouterr().err.strip() == "cnn3d models: error: x.json: the problem"
    monkeypatch.setenv("CNN3D_TRACEBACK", "1")
    with pytest.raises(UsageError):
        main(["models"])
    monkeypatch.delenv("CNN3D_TRACEBACK")
    monkeypatch.setattr(models_command, "run", bug)
    with pytest.raises(ValueError, match="a bug"):
        main(["models"])
