"""The serve stage without a network: splitter, composer, calibration, archive, handler, CLI."""
from __future__ import annotations

import json
import re
import shutil
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from biascard.card import validate
from biascard.serve.archive import ArchiveError, extract_archive, resolve_model, verify_dir, write_archive
from biascard.compose.article import Article
from biascard.compose.sentences import split_sentences

from test_serve_support import ARTICLE, run_cli as _run, tiny_archive, tiny_model  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- sentences


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mr. Smith went home. He slept.", ["Mr. Smith went home.", "He slept."]),
        ("The U.S. Senate voted. It passed.", ["The U.S. Senate voted.", "It passed."]),
        ('"Is it true?" she asked. Yes.', ['"Is it true?" she asked.', "Yes."]),
        ("Headline\n\nBody starts here. Ends here!", ["Headline", "Body starts here.", "Ends here!"]),
        ("See No. 5 today. We love art. Fine.", ["See No. 5 today.", "We love art.", "Fine."]),
        ("Prices rose 3.5 percent. Dr. J. K. Rowling agreed.", ["Prices rose 3.5 percent.", "Dr. J. K. Rowling agreed."]),
        ("a line\nwrapped mid sentence. Next.", ["a line\nwrapped mid sentence.", "Next."]),
        ("   ", []),
        ("!!! ...", []),
    ],
)
def test_split_sentences(text, expected):
    sents = split_sentences(text)
    assert [s.text for s in sents] == expected
    for s in sents:
        assert text[s.start : s.end] == s.text


# ---------------------------------------------------------------- composer


@pytest.fixture(scope="module")
def composer(tiny_model):
    from biascard.compose.composer import Composer

    return Composer.from_model_dir(tiny_model, name="tiny")


def _concept(card, name):
    return next(c for c in card["cognitive_concepts"] if c["concept"] == name)


def test_compose_cards_validate_and_are_honest(composer):
    arts = [Article(text=ARTICLE, title="Budget", source="example.org", id="a1"), Article(text="Short text here.")]
    cards = composer.compose(arts)
    assert len(cards) == 2
    for card in cards:
        validate(card)
    card = cards[0]
    assert (card["id"], card["title"], card["source"]) == ("a1", "Budget", "example.org")
    assert card["model"]["name"] == "tiny" and card["model"]["version"].startswith("sha256:")
    # no framing/gvfc/card_framing_bias head: not estimated, no evidence
    framing = _concept(card, "framing_bias")
    assert framing["score"] is None and framing["evidence"] == [] and "Not estimated" in framing["explanation"]
    # the document ordinal head gives a distribution and an expected score
    lang = _concept(card, "language_bias")
    assert lang["score"] in range(1, 6) and len(lang["distribution"]) == 5
    assert abs(sum(lang["distribution"]) - 1) < 1e-3 and 1 <= lang["expected_score"] <= 5
    # language_bias' sentence head is biased to fire: evidence with offsets into the input
    assert lang["evidence"]
    for ev in lang["evidence"]:
        assert ARTICLE[ev["start"] : ev["end"]] == ev["text"]
        assert set(ev["words"]) <= set(re.findall(r"\w+(?:[-'’]\w+)*", ev["text"]))  # whole words of the span
    scores = [ev["score"] for ev in lang["evidence"]]
    assert scores == sorted(scores, reverse=True)
    # derived scores: no distribution; omission head is biased never to fire → score 1, no evidence
    omission = _concept(card, "bias_by_omission")
    assert omission["score"] == 1 and omission["evidence"] == [] and omission["distribution"] is None
    assert "default cut points, not calibrated" in omission["explanation"]
    dich = _concept(card, "false_dichotomy")
    assert dich["score"] in range(1, 6) and "False Dichotomy is rated" in dich["explanation"]
    # document heads
    assert card["sdgs"] and all(s["polarity"] in ("positive", "negative") and s["relevance"] is None for s in card["sdgs"])
    assert len(card["sdgs"]) <= 3
    assert [t["label"] for t in card["topics"]] and card["political_leaning"]["label"] in ("left", "center", "right")
    assert card["language"] == "en" and card["schema_version"] == "1.1"


def test_one_forward_per_pass(composer):
    """All sentences of all articles share one forward; all documents share another."""
    calls = []
    real = composer.model.forward

    def counting(*a, **k):
        calls.append(k["input_ids"].shape[0])
        return real(*a, **k)

    composer.model.forward = counting
    try:
        composer.compose([Article(text=ARTICLE), Article(text=ARTICLE[:200]), Article(text="One. Two. Three.")])
    finally:
        del composer.model.forward
    assert len(calls) == 2


def test_text_without_sentences_is_not_scored(composer):
    (card,) = composer.compose([Article(text="!!! ???")])
    validate(card)
    omission = _concept(card, "bias_by_omission")
    assert omission["score"] is None and "No sentence" in omission["explanation"]


def test_model_without_concept_heads_has_null_scores(tmp_path):
    import torch

    from biascard.compose.composer import Composer
    from biascard.model.heads import HeadSpec
    from biascard.model.modeling import BiasCardModel, load_tokenizer
    from biascard.model.model_dir import save as save_model_dir
    from biascard.model.tiny import make_tiny_encoder

    enc = make_tiny_encoder(tmp_path / "enc")
    model = BiasCardModel.from_encoder(enc, {"topic": HeadSpec("topic", "multilabel", "document", ["a", "b"])}, max_length=32, stride=8)
    save_model_dir(model, load_tokenizer(enc), tmp_path / "m")
    (card,) = Composer.from_model_dir(tmp_path / "m").compose([Article(text=ARTICLE)])
    validate(card)
    assert all(c["score"] is None and c["evidence"] == [] for c in card["cognitive_concepts"])
    assert card["sdgs"] == [] and card["political_leaning"] is None and len(card["topics"]) == 2
    assert torch.get_num_threads() >= 1


def test_saved_label_thresholds_decide_the_listed_topics(tmp_path):
    from biascard.compose.composer import Composer
    from biascard.model.heads import HeadSpec
    from biascard.model.modeling import BiasCardModel, load_tokenizer
    from biascard.model.model_dir import save as save_model_dir
    from biascard.model.model_dir import write_thresholds
    from biascard.model.tiny import make_tiny_encoder

    enc = make_tiny_encoder(tmp_path / "enc")
    model = BiasCardModel.from_encoder(enc, {"topic": HeadSpec("topic", "multilabel", "document", ["a", "b"])},
                                       max_length=32, stride=8)
    save_model_dir(model, load_tokenizer(enc), tmp_path / "m")
    (plain,) = Composer.from_model_dir(tmp_path / "m").compose([Article(text=ARTICLE)])
    p = {t["label"]: t["probability"] for t in plain["topics"]}
    assert set(p) == {"a", "b"}  # topic_threshold 0.0: both listed
    # a threshold just above a's probability and just below b's: only b is listed
    write_thresholds(tmp_path / "m", {"topic": {"thresholds": [min(p["a"] + 0.01, 0.99), max(p["b"] - 0.01, 0.01)]}},
                     {"method": "set by hand"})
    (card,) = Composer.from_model_dir(tmp_path / "m").compose([Article(text=ARTICLE)])
    validate(card)
    assert [t["label"] for t in card["topics"]] == ["b"]
    # composer.use_model_thresholds=false goes back to the composer's one threshold
    (off,) = Composer.from_model_dir(tmp_path / "m", settings={"use_model_thresholds": False}).compose([Article(text=ARTICLE)])
    assert {t["label"] for t in off["topics"]} == {"a", "b"}


def test_document_head_score_keeps_sentence_evidence(tmp_path):
    """Only document-level scores and no token head: the sentence pass still runs for evidence."""
    import torch

    from biascard.compose.composer import Composer
    from biascard.model.heads import HeadSpec
    from biascard.model.modeling import BiasCardModel, load_tokenizer
    from biascard.model.model_dir import save as save_model_dir
    from biascard.model.tiny import make_tiny_encoder

    enc = make_tiny_encoder(tmp_path / "enc")
    heads = {"card_language_bias": HeadSpec("card_language_bias", "ordinal", "document", ["1", "2", "3", "4", "5"]),
             "language_bias": HeadSpec("language_bias", "binary", "sentence", ["0", "1"])}
    model = BiasCardModel.from_encoder(enc, heads, max_length=32, stride=8)
    with torch.no_grad():
        model.heads["language_bias"].proj.bias.fill_(4.0)
    save_model_dir(model, load_tokenizer(enc), tmp_path / "m")
    (card,) = Composer.from_model_dir(tmp_path / "m").compose([Article(text=ARTICLE)])
    validate(card)
    lang = _concept(card, "language_bias")
    assert lang["distribution"] is not None and len(lang["evidence"]) == 3
    assert all("words" not in ev for ev in lang["evidence"])  # no token head: no word list


def test_calibration_fit_and_load(tiny_model, tmp_path):
    from biascard.serve.calibrate import fit
    from biascard.compose.calibration import load_calibration
    from biascard.compose.composer import Composer

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    comp = Composer.from_model_dir(model_dir)
    articles = [[s.text for s in split_sentences(ARTICLE)][: 2 + i % 5] for i in range(12)]
    concepts = fit(comp, articles, [0.4, 0.7, 0.9, 0.97])
    assert set(concepts) == {"language_bias", "bias_by_omission", "false_dichotomy"}
    for entry in concepts.values():
        assert entry["cut_points"] == sorted(entry["cut_points"]) and entry["n_articles"] + entry["n_too_short"] == 12
    with pytest.raises(ValueError, match="quantiles"):
        fit(comp, articles, [0.9, 0.1, 0.2, 0.3])
    (model_dir / "composer.json").write_text(json.dumps({"concepts": concepts}))
    assert load_calibration(model_dir / "composer.json")["concepts"].keys() == concepts.keys()
    (card,) = Composer.from_model_dir(model_dir).compose([Article(text=ARTICLE)])
    assert "calibrated on validation" in _concept(card, "false_dichotomy")["explanation"]
    (model_dir / "composer.json").write_text(json.dumps({"concepts": {"false_dichotomy": {"statistic": "mean", "cut_points": [3, 2, 1, 0]}}}))
    with pytest.raises(ValueError, match="ascending"):
        Composer.from_model_dir(model_dir)


def test_calibrate_on_real_validation_data(tiny_model, tmp_path, cache_dir):
    from biascard.serve.calibrate import calibrate

    out = tmp_path / "composer.json"
    result = calibrate(tiny_model, datasets=["babe"], output=out, max_articles=4, log=lambda m: None)
    assert result["datasets"] == {"babe": 4} and json.loads(out.read_text())["concepts"]
    assert result["concepts"]["language_bias"]["n_articles"] + result["concepts"]["language_bias"]["n_too_short"] == 4


# ---------------------------------------------------------------- archive


def test_archive_layout_and_roundtrip(tiny_model, tmp_path):
    info = write_archive(tiny_model, tmp_path / "bias-card.mar")
    with zipfile.ZipFile(info["path"]) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("MAR-INF/MANIFEST.json"))
    assert {"MAR-INF/MANIFEST.json", "SHA256SUMS", "biascard_handler.py", "model-config.yaml", "config.json",
            "model.safetensors", "tokenizer.json"} <= names
    assert manifest["runtime"] == "python" and manifest["archiverVersion"] == "0.12.0"
    assert manifest["model"]["modelName"] == "bias-card" and manifest["model"]["handler"] == "biascard_handler.py"
    model_dir, man, tmp = resolve_model(info["path"], expect_sha256=info["sha256"])
    try:
        assert man == manifest and (model_dir / "model.safetensors").is_file() and verify_dir(model_dir)
    finally:
        shutil.rmtree(tmp)
    with pytest.raises(ArchiveError, match="sha256 differs"):
        resolve_model(info["path"], expect_sha256="0" * 64)


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = change.get(item.filename, zin.read(item.filename))
            if data is not None:
                zout.writestr(item.filename, data)
        for name, data in change.items():
            if name not in zin.namelist() and data is not None:
                zout.writestr(name, data)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model.safetensors": b"not the weights"}, "model.safetensors does not match"),
        ({"config.json": b"{}"}, "config.json does not match"),
        ({"extra.py": b"import os"}, "extra.py is not listed"),
        ({"tokenizer.json": None}, "tokenizer.json is listed in SHA256SUMS but missing"),
        ({"SHA256SUMS": None}, "no SHA256SUMS"),
        ({"pytorch_model.bin": b"pickle"}, "pickle-based"),
        ({"../evil.txt": b"x"}, "unsafe member path"),
    ],
)
def test_tampered_archive_fails_to_load(tiny_archive, tmp_path, change, message):
    bad = tmp_path / "bad.mar"
    _rewrite(tiny_archive, bad, change)
    with pytest.raises(ArchiveError, match=message):
        extract_archive(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-extracted is left behind


def test_archive_refuses_pickle_weights(tiny_model, tmp_path):
    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model, model_dir)
    (model_dir / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ArchiveError, match="pytorch_model.bin is a pickle-based weight file"):
        write_archive(model_dir, tmp_path / "x.mar")
    with pytest.raises(ArchiveError, match="model name"):
        write_archive(tiny_model, tmp_path / "x.mar", model_name="bad name!")


# ---------------------------------------------------------------- handler (TorchServe contract)


class RequestProcessor:
    """What TorchServe's context keeps per request: headers in, status and headers out."""

    def __init__(self, headers=None):
        self.headers = headers or {}
        self.status, self.phrase, self.out = 200, None, {}

    def get_request_property(self, key):
        return self.headers.get(key)

    def report_status(self, code, reason_phrase=None):
        self.status, self.phrase = code, reason_phrase

    def add_response_property(self, key, value):
        self.out[key] = value


class MockContext:
    """The attributes of ts.context.Context the handler uses (as TorchServe's own tests mock it)."""

    def __init__(self, model_dir, manifest, yaml_config, n, headers=None):
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": None, "batch_size": n}
        self.manifest = manifest
        self.model_yaml_config = yaml_config
        self.model_name = manifest["model"]["modelName"]
        self.request_processor = [RequestProcessor((headers or {}).get(i)) for i in range(n)]

    def get_request_header(self, idx, key):
        return self.request_processor[idx].get_request_property(key)

    def set_response_status(self, code=200, phrase="", idx=0):
        self.request_processor[idx].report_status(code, phrase)

    def set_response_content_type(self, idx, value):
        self.request_processor[idx].add_response_property("content-type", value)


def test_handler_batch_with_bad_items(tiny_archive, tmp_path):
    import yaml

    from biascard.serve.handler import BiasCardHandler

    model_dir = extract_archive(tiny_archive, tmp_path / "x")  # what TorchServe hands the handler
    manifest = json.loads((model_dir / "MAR-INF/MANIFEST.json").read_text())
    yaml_cfg = yaml.safe_load((model_dir / "model-config.yaml").read_text())
    requests = [
        {"body": ARTICLE.encode()},
        {"data": {"text": ARTICLE, "title": "T", "id": "x"}},
        {"body": b"\xff\xfe bad bytes"},
        {"body": {"text": ""}},
        {"data": {"text": 42}},
        {"body": "A plain str body. Second sentence."},
        {"body": b'{"text": "JSON in bytes.", "format": "text"}'},
        {"body": b"{not json"},
        {},
        {"body": "x" * 200_001},
        {"body": b"Plain text asking for HTML by Accept."},
    ]
    n = len(requests)
    ctx = MockContext(model_dir, manifest, yaml_cfg, n, headers={10: {"Accept": "text/html"}})
    handler = BiasCardHandler()
    handler.initialize(ctx)
    out = handler.handle(requests, ctx)
    assert len(out) == n
    status = [rp.status for rp in ctx.request_processor]
    assert status == [200, 200, 400, 400, 400, 200, 200, 400, 400, 413, 200]
    for i in (0, 1, 5):
        validate(out[i])
        assert out[i]["model"]["name"] == manifest["model"]["modelName"]
        assert out[i]["model"]["version"] == manifest["model"]["modelVersion"]
    assert out[1]["id"] == "x" and out[1]["title"] == "T"
    assert out[2] == {"error": "body is not valid UTF-8 (byte 0)", "field": "body"}
    assert out[3]["field"] == "text" and out[4] == {"error": "text must be a string, got int", "field": "text"}
    assert isinstance(out[6], str) and "Cognitive Concepts" in out[6]
    assert ctx.request_processor[6].out["content-type"].startswith("text/plain")
    assert isinstance(out[10], str) and out[10].lstrip().lower().startswith("<!doctype html")
    # the first request alone gives the same card as inside the batch
    alone = handler.handle([{"body": ARTICLE.encode()}], MockContext(model_dir, manifest, yaml_cfg, 1))
    from test_serve_support import close_cards

    close_cards(alone[0], out[0])


def test_handler_module_entry_point(tiny_archive, tmp_path, monkeypatch):
    """The archive's handler file, imported the way TorchServe's model loader imports it."""
    import importlib

    model_dir = extract_archive(tiny_archive, tmp_path / "x")
    monkeypatch.syspath_prepend(str(model_dir))
    monkeypatch.delitem(sys.modules, "biascard_handler", raising=False)
    mod = importlib.import_module("biascard_handler")
    try:
        manifest = json.loads((model_dir / "MAR-INF/MANIFEST.json").read_text())
        ctx = SimpleNamespace(system_properties={"model_dir": str(model_dir)}, manifest=manifest, model_yaml_config={})
        assert mod.handle(None, ctx) is None  # TorchServe's initialize call for a function entry point
        (card,) = mod.handle([{"body": b"One sentence. Two."}], ctx)
        validate(card)
        assert card["model"]["name"] == manifest["model"]["modelName"]
    finally:
        sys.modules.pop("biascard_handler", None)


def test_handler_refuses_tampered_model_dir(tiny_archive, tmp_path):
    from biascard.serve.handler import BiasCardHandler

    model_dir = extract_archive(tiny_archive, tmp_path / "x")
    (model_dir / "config.json").write_text("{}")
    ctx = MockContext(model_dir, json.loads((model_dir / "MAR-INF/MANIFEST.json").read_text()), {}, 1)
    with pytest.raises(ArchiveError, match="config.json does not match"):
        BiasCardHandler().initialize(ctx)


# ---------------------------------------------------------------- CLI




def test_cli_predict_reports_bad_lines(tiny_archive, tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": "a", "text": ARTICLE}) + "\n"
        + json.dumps({"id": "b", "text": ""}) + "\n"
        + "not json\n"
        + "\n"
        + json.dumps({"text": "No id on this one."}) + "\n"
        + json.dumps(["a list"]) + "\n"
        + json.dumps({"id": 7, "text": "Numeric id.", "title": 3}) + "\n"
    )
    out = tmp_path / "out.jsonl"
    r = _run(["predict", "--model", str(tiny_archive), "--input", str(src), "--output", str(out), "--no-progress"], tmp_path, monkeypatch, capsys)
    assert r.returncode == 1, r.stderr
    for line in ("in.jsonl:2: text is empty (field text)", "in.jsonl:3: malformed JSON", "in.jsonl:6: expected a JSON object",
                 "in.jsonl:7: title must be a string"):
        assert line in r.stderr
    assert "wrote 2 cards" in r.stderr and "skipped 4 bad line(s)" in r.stderr
    cards = [json.loads(x) for x in out.read_text().splitlines()]
    assert [c["id"] for c in cards] == ["a", "line:5"]  # no id: its line number, never a bare number
    for c in cards:
        validate(c)
    strict = _run(["predict", "--model", str(tiny_archive), "--input", str(src), "--output", str(out), "--strict", "--overwrite", "--no-progress"], tmp_path, monkeypatch, capsys)
    assert strict.returncode == 2 and "stopped at line 2" in strict.stderr


def test_cli_card_formats_and_default_model(tiny_model, tmp_path, monkeypatch, capsys):
    article = tmp_path / "article.txt"
    article.write_text(ARTICLE)
    r = _run(["card", "--model", str(tiny_model), "--format", "text", "--title", "Budget", str(article)], tmp_path, monkeypatch, capsys)
    assert r.returncode == 0, r.stderr
    assert "Cognitive Concepts" in r.stdout and "Language Bias" in r.stdout
    from biascard.card import parse_text

    assert parse_text(r.stdout)["title"] == "Budget"
    from biascard.model import model_dir

    # no --model, no env: the released model dir (here a copy of the tiny model), before any outputs/
    released = tmp_path / "repo_models"
    shutil.copytree(tiny_model, released / model_dir.RELEASE_NAME)
    target = tmp_path / "outputs" / "train" / "runs" / "r1" / "model"
    shutil.copytree(tiny_model, target)
    monkeypatch.setattr(model_dir, "released_model", lambda: released / model_dir.RELEASE_NAME)
    r = _run(["card", str(article)], tmp_path, monkeypatch, capsys)
    assert r.returncode == 0, r.stderr
    assert f"using model {released / model_dir.RELEASE_NAME}" in r.stderr
    # without a release (an install without the repo) the newest outputs/**/model; stdin input
    monkeypatch.setattr(model_dir, "released_model", lambda: None)
    r = _run(["card", "-"], tmp_path, monkeypatch, capsys, stdin="From stdin. Two sentences.")
    assert r.returncode == 0, r.stderr
    assert f"using model {Path('outputs/train/runs/r1/model')}" in r.stderr
    validate(json.loads(r.stdout))
    # no --model, no env, no release, no outputs/: a clear error
    shutil.rmtree(tmp_path / "outputs")
    r = _run(["card", str(article)], tmp_path, monkeypatch, capsys)
    assert r.returncode == 2 and "no model given" in r.stderr
    (tmp_path / "empty.txt").write_text(" \n")
    r = _run(["card", "--model", str(tiny_model), str(tmp_path / "empty.txt")], tmp_path, monkeypatch, capsys)
    assert r.returncode == 2 and "empty.txt: text is empty" in r.stderr


def test_cli_archive(tiny_model, tmp_path, monkeypatch, capsys):
    r = _run(["archive", "--model", str(tiny_model), "--output", str(tmp_path / "news-bias.mar"), "--batch-size", "2"], tmp_path, monkeypatch, capsys)
    assert r.returncode == 0, r.stderr
    assert "model news-bias" in r.stdout and "sha256 " in r.stdout
    with zipfile.ZipFile(tmp_path / "news-bias.mar") as z:
        assert "batchSize: 2" in z.read("model-config.yaml").decode()
    r = _run(["archive", "--model", str(tmp_path / "missing"), "--output", str(tmp_path / "x.mar")], tmp_path, monkeypatch, capsys)
    assert r.returncode == 2 and "not a model directory" in r.stderr


# ---------------------------------------------------------------- KServe adapter


def test_kserve_model_imports_without_kserve(monkeypatch):
    import importlib

    import biascard.serve.kserve_model as module

    monkeypatch.setitem(sys.modules, "kserve", None)  # `import kserve` now raises ImportError
    importlib.reload(module)


# ---------------------------------------------------------------- the server's composer settings


def test_serve_layers_command_line_over_archive_settings(tiny_model, tmp_path, monkeypatch):
    """`biascard serve`: config files, then the archive's handler.composer, then what the command
    line changed; the composer merges them once."""
    from biascard.compose.settings import serve_config
    from biascard.serve.server import changed_settings, open_service

    files = serve_config()["composer"]
    mar = write_archive(tiny_model, tmp_path / "layered.mar",
                        model_config={"handler": {"composer": {"evidence_k": 1, "sdg_max": 1}}})["path"]
    cfg = serve_config([f"model_path={mar}", "composer.sdg_max=2", "composer.runtime.batch_tokens=512"])
    assert changed_settings(files, cfg["composer"]) == {"sdg_max": 2, "runtime": {"batch_tokens": 512}}
    with open_service(cfg) as service:
        settings = service.composer.settings
    assert settings["evidence_k"] == 1  # the archive's, not reset to the file's 3
    assert settings["sdg_max"] == 2  # the command line wins over the archive
    assert settings["runtime"]["batch_tokens"] == 512 and settings["runtime"]["length_sorted"] is True
    assert settings["topic_k"] == files["topic_k"] and files["evidence_k"] != 1
    from biascard.model import model_dir

    monkeypatch.setattr(model_dir, "released_model", lambda: None)
    with pytest.raises(ValueError, match="no model"):
        open_service({**cfg, "model_path": None})
