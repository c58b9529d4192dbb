"""Continued masked-LM pre-training (biascard.train.mlm) on the train splits' text."""
import json

import torch
from safetensors.torch import load_file

from biascard.model.heads import HeadSpec
from biascard.train.mlm import main, pretrain, texts_of
from biascard.model.modeling import BiasCardModel, resolve_encoder


def test_mlm_adapts_the_encoder_and_fine_tuning_loads_it(smoke_inputs, tmp_path, capsys):
    out = tmp_path / "enc"
    info = pretrain(out, encoder="tiny", datasets=("mbic",), steps=6, batch_size=4, max_length=32, lr=1e-3,
                    log=lambda m: None)
    assert info["steps"] == 6 and info["windows"] >= len(texts_of(["mbic"])) > 1000
    assert json.loads((out / "mlm.json").read_text())["datasets"] == ["mbic"]
    assert not [p for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pkl")]
    # the saved weights are the encoder's (no MLM head) and they moved
    before = load_file(f"{resolve_encoder('tiny')}/model.safetensors")
    after = load_file(out / "model.safetensors")
    assert not any(k.startswith("cls.") for k in after)
    key = next(k for k in after if k.endswith("word_embeddings.weight"))
    src = next(k for k in before if k.endswith("word_embeddings.weight"))
    assert after[key].shape == before[src].shape and not torch.equal(after[key], before[src])
    model = BiasCardModel.from_encoder(str(out), {"b": HeadSpec(name="b", type="binary")}, max_length=32, stride=8)
    assert model.encoder.config.hidden_size == 32
    assert main(["--out", str(tmp_path / "x"), "--steps", "0"]) == 2
    assert main(["--out", str(tmp_path / "x"), "--steps", "2", "--head-warmup-steps", "2"]) == 2
    assert main(["--out", str(tmp_path / "x"), "--encoder", "tiny", "--datasets", "nosuch", "--steps", "1"]) == 2
    assert "nosuch" in capsys.readouterr().err


def test_head_warmup_leaves_the_encoder_frozen(smoke_inputs, tmp_path):
    out = tmp_path / "enc"
    info = pretrain(out, encoder="tiny", datasets=("mbic",), steps=3, head_warmup_steps=3, batch_size=4,
                    max_length=32, lr=1e-3, head_lr=1e-2, log=lambda m: None)
    assert info["head_warmup_steps"] == 3 and info["head_lr"] == 1e-2
    before = load_file(f"{resolve_encoder('tiny')}/model.safetensors")
    after = load_file(out / "model.safetensors")
    for key, value in after.items():  # every encoder weight (the tied decoder's too) is unchanged
        src = next(k for k in before if k.endswith(key.split(".", 1)[-1]) and before[k].shape == value.shape)
        assert torch.equal(value, before[src]), key


def test_masked_only_loss_equals_the_models_own_loss(smoke_inputs):
    from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

    from biascard.train.mlm import masked_loss
    from biascard.model.modeling import load_tokenizer

    model, tok = AutoModelForMaskedLM.from_pretrained(resolve_encoder("tiny")), load_tokenizer("tiny")
    torch.manual_seed(0)
    ids = tok("the senate passed the bill on tuesday after a long and bitter debate")["input_ids"]
    batch = DataCollatorForLanguageModeling(tok, mlm_probability=0.3, return_tensors="pt")([{"input_ids": ids}] * 4)
    assert (batch["labels"] != -100).any()
    with torch.no_grad():
        assert torch.allclose(masked_loss(model, model.cls, dict(batch)), model(**batch).loss, atol=1e-5)
