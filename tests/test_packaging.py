"""The repo installs as one import package, `biascard`, from a wheel as well as editable."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
    )
    (whl,) = out.glob("biascard-*.whl")
    return whl


def test_wheel_holds_only_the_biascard_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"biascard", next(t for t in tops if t.endswith(".dist-info"))}
    for expected in (
        "biascard/cli.py",
        "biascard/data/records.py",
        "biascard/data/adapters/babe.py",
        "biascard/card/card.schema.json",
        "biascard/card/templates/card.html.j2",
        "biascard/compose/composer.py",
        "biascard/model/model_dir.py",
        "biascard/data/bundled/sdg_trail22/Train_data.csv",
        "biascard/data/bundled/sdg_trail22/ATTRIBUTION.md",
        "biascard/data/sources.json",
        "biascard/model/modeling.py",
        "biascard/train/loop.py",
        "biascard/eval/__main__.py",
        "biascard/serve/handler.py",
        "biascard/configs/train.yaml",
        "biascard/configs/heads/default.yaml",
        "biascard/configs/eval.yaml",
        "biascard/configs/serve.yaml",
    ):
        assert expected in names, expected
    assert any(n.startswith("biascard/eval/metrics/") and n.endswith(".py") for n in names)
    assert not any(n.startswith("biascard/tests") or "/__pycache__/" in n for n in names)
    # one `biascard` command; the stage commands are its aliases
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = dict(line.split(" = ") for line in zipfile.ZipFile(wheel).read(entry_points).decode().splitlines()
                   if " = " in line)
    assert scripts == {"biascard": "biascard.cli:main", "biascard-train": "biascard.cli:train_command",
                       "biascard-eval": "biascard.cli:eval_command", "biascard-serve": "biascard.cli:serve_command"}


def test_wheel_install_imports_and_finds_its_data(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)], check=True
    )
    code = (
        "import biascard, biascard.card as c, biascard.data.paths as p;"
        "from hydra import compose, initialize_config_module;"
        "print(biascard.__file__); c.load_schema();"
        "assert (p.BUNDLED_DIR / 'sdg_trail22' / 'Test_data.csv').is_file();"
        "initialize_config_module('biascard.configs', version_base='1.3');"
        "print(sorted(compose('train').keys()))"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    first = out.stdout.splitlines()[0]
    assert first.startswith(str(site)), f"imported {first}, not the wheel"
    assert "heads" in out.stdout and "trainer" in out.stdout
