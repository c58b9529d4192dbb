"""Shared pieces of the serve tests: a tiny random model, an archive, a live server.

Builders cache on disk under pytest's base temp dir, so each file that uses them builds
the model once per session at most.
"""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

ARTICLE = (
    "City Council Approves New Budget After Heated Debate\n\n"
    "The city council voted 7-2 on Tuesday to approve a $1.2 billion budget for the coming year. "
    "Mr. Alvarez, who chairs the finance committee, called the plan \"a reckless giveaway\" that "
    "would bankrupt the U.S. city within a decade. Supporters said the budget funds schools, "
    "roads and public transit.\n\n"
    "Either we cut spending now or our children will pay forever, said Dr. Chen. "
    "The mayor's office did not respond to a request for comment. "
    "Residents can read the full budget on the city's website."
)

# heads of the test model (tests/golden/sample_card.json was recorded with them, so changing them
# means recording it again): a doc head for one concept, sentence heads for two, the token
# head, document heads for the other card fields, and nothing for framing (→ null score)
HEADS = {
    "language_bias": ("binary", "sentence", ["0", "1"]),
    "lexical_bias": ("binary", "sentence", ["0", "1"]),
    "informational_bias": ("binary", "sentence", ["0", "1"]),
    "false_dilemma": ("binary", "sentence", ["0", "1"]),
    "fallacy": ("multiclass", "sentence", ["ad hominem", "false dilemma", "none"]),
    "biased_words": ("token", "sentence", ["O", "BIASED"]),
    "card_language_bias": ("ordinal", "document", ["1", "2", "3", "4", "5"]),
    "sdg": ("multilabel", "document", [str(i) for i in range(1, 18)]),
    "sdg_polarity": ("multiclass", "document", ["negative", "positive"]),
    "topic": ("multilabel", "document", ["budget", "education", "elections", "health"]),
    "political_leaning": ("multiclass", "document", ["left", "center", "right"]),
}
# head biases that make outputs deterministic in sign: language_bias fires, omission never
BIASES = {"language_bias": 3.0, "informational_bias": -3.0, "false_dilemma": 0.0, "sdg": 2.0}


def run_cli(args, cwd, monkeypatch, capsys, stdin: str | None = None):
    """`biascard ARGS` in this process (a subprocess would pay torch's import again):
    returncode, stdout, stderr."""
    import io
    import sys
    from types import SimpleNamespace

    from biascard.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.delenv("BIASCARD_MODEL", raising=False)
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


def build_model(path: Path) -> Path:
    """A tiny random BiasCardModel with HEADS, saved with save_model_dir (reused if present)."""
    path = Path(path)
    if (path / "model.safetensors").is_file():
        return path
    import torch

    from biascard.model.heads import HeadSpec
    from biascard.model.modeling import BiasCardModel, load_tokenizer
    from biascard.model.model_dir import save as save_model_dir
    from biascard.model.tiny import make_tiny_encoder

    encoder = make_tiny_encoder(path.parent / "tiny-encoder")
    specs = {n: HeadSpec(n, t, lvl, labels) for n, (t, lvl, labels) in HEADS.items()}
    model = BiasCardModel.from_encoder(encoder, specs, max_length=64, stride=16)
    with torch.no_grad():
        for name, b in BIASES.items():
            model.heads[name].proj.bias.fill_(b)
    tmp = path.with_name(path.name + ".tmp")
    save_model_dir(model, load_tokenizer(encoder), tmp)
    tmp.rename(path)
    return path


def build_archive(model_dir: Path, output: Path) -> Path:
    from biascard.serve.archive import write_archive

    if not output.is_file():
        write_archive(model_dir, output)
    return output


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_model(tmp_path_factory.getbasetemp() / "serve-model" / "model")


@pytest.fixture(scope="session")
def tiny_archive(tiny_model) -> Path:
    return build_archive(tiny_model, tiny_model.parent / "tiny.mar")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn in a thread on 127.0.0.1, serving create_app(service, cfg) with the uvicorn
    options `biascard serve` derives from cfg (TLS, the JSON 400 protocol)."""

    def __init__(self, service, cfg: dict):
        import uvicorn

        from biascard.serve.security import uvicorn_options
        from biascard.serve.server import create_app

        self.app = create_app(service, cfg)
        self.port = free_port()
        options = uvicorn_options(cfg)
        self.url = f"{'https' if 'ssl_certfile' in options else 'http'}://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)


def server_cfg(**over) -> dict:
    from biascard.compose.settings import serve_config

    cfg = serve_config()
    cfg.update(over)
    return cfg


def close_cards(a, b, tol: float = 2e-3, where: str = "card") -> None:
    """Equal cards, except floats may differ by `tol` (batching can move the last digits)."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), f"{where}: {a!r} vs {b!r}"
        assert abs(a - b) <= tol, f"{where}: {a} vs {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} vs {sorted(b) if isinstance(b, dict) else b}"
        for k in a:
            close_cards(a[k], b[k], tol, f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            close_cards(x, y, tol, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"
