"""The `biascard` command: every job is a sub-command, each --help names its own command, and
the biascard-train/-eval/-serve aliases behave as `biascard train|eval|serve`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from biascard.cli import main

BIN = Path(sys.executable).parent
# the command tree every user-facing doc refers to
TREE = [
    "data list", "data prepare", "data stats", "data fetch",
    "train", "train thresholds", "train mlm",
    "eval", "eval compare", "eval targets", "eval ablations", "eval composer-ablation", "eval screenshot",
    "eval release",
    "card", "card parse", "card render",
    "predict", "calibrate", "archive", "serve",
]


def _groups(text: str) -> set[str]:
    """The config groups a Hydra help lists (the `group: ...` lines of its groups section)."""
    section = text.split("== Config groups ==", 1)[1].split("== Config ==", 1)[0]
    return {line.split(":", 1)[0] for line in section.splitlines() if line[:1].isalpha() and ": " in line}


def _help(*args: str, exe: str = "biascard") -> str:
    r = subprocess.run([str(BIN / exe), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    return {app: _help(app, "--help") for app in ("train", "eval", "serve")}


def test_top_level_help_lists_every_command_with_a_description():
    out = _help("--help")
    lines = out.splitlines()
    for command in TREE:
        # the command's line, then its description on the same line or the next
        at = [i for i, line in enumerate(lines) if line.strip().startswith(f"biascard {command} ")
              or line.strip() == f"biascard {command}"]
        assert at, f"`biascard {command}` missing from biascard --help:\n{out}"
        line, after = lines[at[0]], (lines[at[0] + 1] if at[0] + 1 < len(lines) else "")
        described = "  " in line.strip() or (after.startswith("   ") and not after.strip().startswith("biascard"))
        assert described, f"`biascard {command}` has no description: {line!r}"


def test_each_hydra_app_help_names_its_own_command(helps):
    train, eval_, serve = helps["train"], helps["eval"], helps["serve"]
    assert train.startswith("biascard train:") and "biascard train thresholds" in train and "biascard train mlm" in train
    assert _groups(train) == {"data", "model", "heads", "trainer", "logger", "paths", "experiment",
                              "hparams_search", "debug", "local"}
    assert eval_.startswith("biascard eval:")
    for sub in ("compare", "targets", "ablations", "composer-ablation", "screenshot"):
        assert f"biascard eval {sub}" in eval_
    assert _groups(eval_) == {"data", "paths"}
    assert serve.startswith("biascard serve:") and "model_path" in serve and "evidence_k" in serve
    for name, text in helps.items():
        others = [o for o in helps if o != name]
        for other in others:
            assert f"biascard {other}" not in text and f"biascard-{other}" not in text, (name, other)
        assert "is powered by Hydra" not in text and "__main__" not in text
    assert _groups(serve) == {"local"}


def test_aliases_behave_as_the_subcommands(helps):
    for app in ("train", "eval", "serve"):
        assert _help("--help", exe=f"biascard-{app}") == helps[app]
    r = subprocess.run([sys.executable, "-m", "biascard.train", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == helps["train"]


def test_eval_reads_model_as_model_dir():
    assert "model_dir: /some/model\n" in _help("model=/some/model", "--help", exe="biascard-eval")


def test_card_help_shows_every_form(capsys):
    with pytest.raises(SystemExit) as e:
        main(["card", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("usage: biascard card ")
    for form in ("--model", "biascard card --model DIR article.txt", "biascard card parse FILE",
                 "biascard card render FILE --format text|html"):
        assert form in out


@pytest.mark.parametrize("words, flag", [
    (["train", "thresholds"], "--model"), (["train", "mlm"], "--out"),
    (["eval", "compare"], "--n-boot"), (["eval", "targets"], "--json"), (["eval", "ablations"], "--n-boot"),
    (["eval", "composer-ablation"], "--model"), (["eval", "screenshot"], "png"), (["eval", "release"], "export"),
    (["data", "fetch"], "--base-url"), (["predict"], "--input"), (["calibrate"], "--max-articles"),
    (["archive"], "--output"), (["card", "render"], "--format"),
])
def test_subcommands_reach_their_parsers(words, flag, capsys):
    with pytest.raises(SystemExit) as e:
        main([*words, "--help"])
    assert e.value.code == 0 and flag in capsys.readouterr().out


def test_no_or_unknown_command_is_an_error(capsys):
    assert main([]) == 2 and "a command is needed" in capsys.readouterr().err
    assert main(["bogus"]) == 2 and "unknown command 'bogus'" in capsys.readouterr().err
    assert main(["data"]) == 2 and "biascard data list" in capsys.readouterr().err
    assert main(["data", "nope"]) == 2 and "unknown command 'nope'" in capsys.readouterr().err
    assert main(["data", "--help"]) == 0 and "biascard data fetch" in capsys.readouterr().out


def test_help_override_joins_the_other_overrides():
    from biascard.train.__main__ import hydra_argv

    assert hydra_argv("p", "train", ["a=1", "b=2"]) == ["p", "a=1", "b=2"]  # runs are left alone
    assert hydra_argv("p", "train", ["--help"]) == ["p", "hydra/help=train", "--help"]
    assert hydra_argv("p", "eval", ["-m", "a=1", "--help"]) == ["p", "-m", "hydra/help=eval", "a=1", "--help"]
    assert hydra_argv("p", "eval", ["hydra/help=mine", "--help"]) == ["p", "hydra/help=mine", "--help"]


def test_card_set_overrides_composer_settings(tmp_path, capsys):
    """`--set KEY=VALUE` is a composer settings layer for this run (here: no summary, no
    questions); a pair without `=` is refused."""
    import json

    from test_serve_support import ARTICLE, build_model

    model = build_model(tmp_path / "model")
    article = tmp_path / "a.txt"
    article.write_text(ARTICLE, encoding="utf-8")
    assert main(["card", "--model", str(model), str(article)]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["summary"]["method"] == "extractive" and len(full["key_questions"]) == 3
    assert main(["card", "--model", str(model), "--set", "summary.enabled=false",
                 "--set", "key_questions.enabled=false", str(article)]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["summary"] is None and card["key_questions"] == []
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        main(["card", "--model", str(model), "--set", "summary.enabled", str(article)])
