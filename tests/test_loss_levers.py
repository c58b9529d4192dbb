"""Training levers of issue 7: class weighting and focal loss per head, layer-wise lr decay."""
import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from biascard.model.heads import HeadSpec, load_heads, resolve_labels
from biascard.train.optimization import lr_scale, param_groups
from biascard.model.modeling import BiasCardModel, head_loss_fn, load_tokenizer
from biascard.model.model_dir import load as load_model_dir, save as save_model_dir
from biascard.model.tiny import make_tiny_encoder


def _rows(values, head="mc"):
    return [{"text": f"t{i}", "labels": {head: v}} for i, v in enumerate(values)]


def test_balanced_weights_come_from_train_counts_only():
    heads = load_heads({"mc": {"type": "multiclass", "class_weight": "balanced"}})
    data = {"train": _rows(["a"] * 6 + ["b"] * 3 + ["c"] * 1), "validation": _rows(["c"] * 50)}
    spec = resolve_labels(heads, data)["mc"]
    assert spec.labels == ["a", "b", "c"]
    assert spec.class_weight == pytest.approx([10 / 18, 10 / 9, 10 / 3], rel=1e-5)
    binary = resolve_labels(load_heads({"b": {"type": "binary", "class_weight": "balanced"}}),
                            {"train": _rows([0, 0, 0, 1], head="b")})["b"]
    assert binary.class_weight == pytest.approx([4 / 6, 4 / 2], rel=1e-5)
    # multilabel: each label's positives weigh n_neg / n_pos (BCE pos_weight)
    ml = resolve_labels(load_heads({"m": {"type": "multilabel", "class_weight": "balanced"}}),
                        {"train": _rows([["x"], ["x", "y"], ["x"], [], None], head="m")})["m"]
    assert ml.labels == ["x", "y"] and ml.class_weight == pytest.approx([1 / 3, 3 / 1], rel=1e-5)


def test_multilabel_pos_weight_matches_torch():
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    y = torch.tensor([[1, 0, 0], [0, 1, 1], [-100, -100, -100], [0, 0, 1]])
    spec = HeadSpec(name="m", type="multilabel", labels=["a", "b", "c"], class_weight=[2.0, 1.0, 5.0])
    keep = torch.tensor([0, 1, 3])
    ref = F.binary_cross_entropy_with_logits(logits[keep], y[keep].float(), pos_weight=torch.tensor([2.0, 1.0, 5.0]))
    assert head_loss_fn(spec, logits, y).item() == pytest.approx(ref.item(), rel=1e-6)
    plain = HeadSpec(name="m", type="multilabel", labels=["a", "b", "c"])
    ref = F.binary_cross_entropy_with_logits(logits[keep], y[keep].float())
    assert head_loss_fn(plain, logits, y).item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize("bad, msg", [
    ({"type": "ordinal", "class_weight": "balanced"}, "class_weight is for binary, multiclass and multilabel"),
    ({"type": "multiclass", "labels": ["a", "b"], "thresholds": [0.3]}, "thresholds are for binary and multilabel"),
    ({"type": "multilabel", "labels": ["a", "b"], "thresholds": [0.3]}, "1 thresholds for a multilabel head"),
    ({"type": "binary", "thresholds": [1.5]}, r"must lie in \(0, 1\)"),
    ({"type": "multiclass", "labels": ["a", "b"], "class_weight": [1.0]}, "1 weights for 2 labels"),
    ({"type": "multiclass", "labels": ["a", "b"], "class_weight": "inverse"}, "use 'balanced'"),
    ({"type": "token", "focal_gamma": 2}, "focal_gamma"),
    ({"type": "binary", "focal_gamma": -1}, "focal_gamma"),
])
def test_bad_lever_settings_name_the_head(bad, msg):
    with pytest.raises(ValueError, match=msg) as e:
        HeadSpec.from_dict("h", bad)
    assert "'h'" in str(e.value)


def test_weighted_and_focal_losses_match_hand_computation():
    torch.manual_seed(0)
    logits, y = torch.randn(7, 3), torch.tensor([0, 1, 2, 2, 1, 0, -100])
    plain = HeadSpec(name="mc", type="multiclass", labels=["a", "b", "c"])
    assert head_loss_fn(plain, logits, y) == pytest.approx(F.cross_entropy(logits[:6], y[:6]).item(), rel=1e-6)
    weighted = HeadSpec(name="mc", type="multiclass", labels=["a", "b", "c"], class_weight=[1.0, 2.0, 4.0])
    ref = F.cross_entropy(logits[:6], y[:6], weight=torch.tensor([1.0, 2.0, 4.0]))  # torch's weighted mean
    assert head_loss_fn(weighted, logits, y).item() == pytest.approx(ref.item(), rel=1e-6)
    focal = HeadSpec(name="mc", type="multiclass", labels=["a", "b", "c"], focal_gamma=2.0)
    p = torch.softmax(logits[:6], -1)[torch.arange(6), y[:6]]
    hand = (-(1 - p) ** 2 * torch.log(p)).mean()
    assert head_loss_fn(focal, logits, y).item() == pytest.approx(hand.item(), rel=1e-5)
    # binary: gamma 0 is plain BCE, gamma > 0 shrinks every term
    bl, by = torch.randn(5), torch.tensor([1, 0, 1, 1, 0])
    b0 = head_loss_fn(HeadSpec(name="b", type="binary"), bl, by)
    assert b0.item() == pytest.approx(F.binary_cross_entropy_with_logits(bl, by.float()).item(), rel=1e-6)
    assert head_loss_fn(HeadSpec(name="b", type="binary", focal_gamma=2.0), bl, by) < b0


def test_levers_are_saved_with_the_model(tmp_path):
    enc = make_tiny_encoder(tmp_path / "enc")
    heads = resolve_labels(load_heads({"mc": {"type": "multiclass", "class_weight": "balanced", "focal_gamma": 1.5}}),
                           {"train": _rows(["a", "a", "b"])})
    model = BiasCardModel.from_encoder(enc, heads, max_length=16, stride=4)
    save_model_dir(model, load_tokenizer(enc), tmp_path / "m")
    again, _ = load_model_dir(tmp_path / "m")
    spec = again.head_specs["mc"]
    assert spec.class_weight == pytest.approx([0.75, 1.5]) and spec.focal_gamma == 1.5


def test_layer_decay_scales_lr_by_depth(tmp_path):
    enc = make_tiny_encoder(tmp_path / "enc")
    model = BiasCardModel.from_encoder(enc, load_heads({"b": {"type": "binary"}}), max_length=16, stride=4)
    layers = 1 + max(int(n.split(".layer.")[1].split(".")[0]) for n, _ in model.named_parameters() if ".layer." in n)
    assert lr_scale("encoder.encoder.layer.%d.attention.self.query.weight" % (layers - 1), layers, 0.5) == 1.0
    assert lr_scale("encoder.encoder.layer.0.output.dense.weight", layers, 0.5) == 0.5 ** (layers - 1)
    assert lr_scale("encoder.embeddings.word_embeddings.weight", layers, 0.5) == 0.5 ** layers
    assert lr_scale("heads.b.out.weight", layers, 0.5) == 1.0
    tr = OmegaConf.create({"lr": 1e-4, "head_lr": 1e-3, "weight_decay": 0.01, "layer_decay": 0.5})
    lrs = {g["lr"] for g in param_groups(model, tr)}
    assert {1e-3, 1e-4, 1e-4 * 0.5 ** layers} <= lrs
    # off: every encoder parameter at lr
    off = param_groups(model, OmegaConf.create({"lr": 1e-4, "head_lr": None, "weight_decay": 0.0, "layer_decay": None}))
    assert {g["lr"] for g in off} == {1e-4}
    with pytest.raises(ValueError, match="layer_decay"):
        param_groups(model, OmegaConf.create({"lr": 1e-4, "weight_decay": 0.0, "layer_decay": 1.5}))
    assert math.isclose(sum(p.numel() for g in param_groups(model, tr) for p in g["params"]),
                        sum(p.numel() for p in model.parameters()))
