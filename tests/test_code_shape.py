"""The code-shape rules of DEVELOPERS.md that import-linter does not cover (it checks the
layering in `make test`): no private names across modules, short functions, short files."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("biascard", "data", "train", "eval", "serve", "bench")
MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 400
# a comment saying why a function or file may be longer
LONG_MARK = "# long:"


def _sources() -> list[Path]:
    return sorted(p for d in FOLDERS for p in (REPO / d).rglob("*.py") if "__pycache__" not in p.parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_imports(path: Path, tree: ast.AST) -> list[str]:
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            names = [a.name for a in node.names]
            if any(_private(p) for p in parts) or any(_private(n) for n in names):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}: from {'.' * node.level}{node.module or ''} "
                           f"import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if any(_private(p) for p in a.name.split(".")):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno}: import {a.name}")
    return bad


def _long_functions(path: Path, tree: ast.AST, lines: list[str]) -> list[str]:
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            n = node.end_lineno - node.lineno + 1
            marked = any(LONG_MARK in lines[i] for i in range(max(0, first - 3), first - 1))
            if n > MAX_FUNCTION_LINES and not marked:
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.name} has {n} lines")
    return bad


@pytest.fixture(scope="module")
def parsed():
    out = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        out.append((path, ast.parse(text, filename=str(path)), text.splitlines()))
    return out


def test_sources_are_found(parsed):
    names = {p.relative_to(REPO).as_posix() for p, _, _ in parsed}
    assert {"biascard/compose/composer.py", "train/loop.py", "serve/server.py", "bench/roofline.py"} <= names


def test_no_private_names_across_modules(parsed):
    bad = [b for path, tree, _ in parsed for b in _private_imports(path, tree)]
    assert not bad, "imports of private names:\n" + "\n".join(bad)


def test_functions_are_short(parsed):
    bad = [b for path, tree, lines in parsed for b in _long_functions(path, tree, lines)]
    assert not bad, f"functions over {MAX_FUNCTION_LINES} lines without a '{LONG_MARK}' comment:\n" + "\n".join(bad)


def test_files_are_short(parsed):
    bad = [f"{p.relative_to(REPO)}: {len(lines)} lines" for p, _, lines in parsed
           if len(lines) > MAX_FILE_LINES and not any(LONG_MARK in line for line in lines[:30])]
    assert not bad, f"files over {MAX_FILE_LINES} lines without a '{LONG_MARK}' comment near the top:\n" + "\n".join(bad)


def test_the_checks_can_fail(tmp_path):
    src = ("from .loop import _lengths\nimport _common\n\ndef f():\n" + "    x = 1\n" * 90)
    path = tmp_path / "bad.py"
    tree = ast.parse(src)
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        assert len(_private_imports(path, tree)) == 2
        assert _long_functions(path, tree, src.splitlines())
    finally:
        REPO = saved


def _lint_imports(root: Path):
    """import-linter with the package found under `root`, as `make lint-imports` runs it (it
    reads the file system; the stage folders are linked into biascard/)."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--no-cache", str(REPO / "pyproject.toml")], cwd=root, capture_output=True,
                          text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=300)


def test_import_contracts_hold():
    run = _lint_imports(REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 kept, 0 broken" in run.stdout


def test_import_contracts_catch_a_core_module_importing_a_stage(tmp_path):
    # a copy of the package's links whose core `card` holds one planted import of a stage
    pkg = tmp_path / "view" / "biascard"
    pkg.mkdir(parents=True)
    for p in (REPO / "biascard").iterdir():
        if p.name not in ("__pycache__", "card"):
            (pkg / p.name).symlink_to(p.resolve())
    (pkg / "card").mkdir()
    for p in (REPO / "biascard" / "card").iterdir():
        if p.name != "__pycache__":
            (pkg / "card" / p.name).symlink_to(p)
    (pkg / "card" / "planted.py").write_text("from biascard.serve import server  # noqa\n")
    run = _lint_imports(tmp_path / "view")
    assert run.returncode != 0 and "BROKEN" in run.stdout, run.stdout
