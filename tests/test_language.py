"""The card's language (biascard/compose/language.py) with py3langid's bundled model."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from biascard.compose.language import detect_language, english_warning, language_name, language_settings

REPO = Path(__file__).resolve().parents[1]

ENGLISH = ("The Supreme Court ruled on Tuesday that the state may not block the pipeline, overturning a lower "
           "court's decision. Officials said they would study the ruling before deciding on next steps.")
GERMAN = ("Das Bundesverfassungsgericht in Karlsruhe hat am Dienstag entschieden, dass die Reform des Wahlrechts "
          "in Teilen verfassungswidrig ist. Die Richter gaben damit einer Klage der Opposition statt.")
FRENCH = ("Le Conseil constitutionnel a validé jeudi l'essentiel de la réforme des retraites, tout en censurant "
          "plusieurs mesures. Les syndicats ont appelé à une nouvelle journée de mobilisation.")


@pytest.fixture(scope="module")
def results():
    return dict(zip(("en", "de", "fr", "short", "empty", "digits"),
                    detect_language([ENGLISH, GERMAN, FRENCH, "Hello", "", "12345 678 90 1234 5678 1"], {})))


def test_shape_and_codes(results):
    for r in results.values():
        assert set(r) == {"code", "probability", "reliable"}
        assert isinstance(r["code"], str) and 0.0 <= r["probability"] <= 1.0 and isinstance(r["reliable"], bool)
    for code in ("en", "de", "fr"):
        assert results[code]["code"] == code and results[code]["reliable"] and results[code]["probability"] > 0.95


def test_other_languages_warn_english_does_not(results):
    assert english_warning(results["en"]) is None
    de = english_warning(results["de"])
    assert de.startswith("The text reads as German (de, p=") and "trained on English news" in de
    assert english_warning(results["fr"]).startswith("The text reads as French (fr, p=")


def test_short_or_empty_text_is_unreliable_and_does_not_warn(results):
    for key in ("short", "empty", "digits"):
        assert not results[key]["reliable"], results[key]
        assert english_warning(results[key]) is None


def test_thresholds_come_from_settings():
    [strict] = detect_language([GERMAN], {"min_chars": 1000})
    assert strict["code"] == "de" and not strict["reliable"]
    [loose] = detect_language(["Hallo Welt"], {"min_chars": 1, "min_probability": 0.0})
    assert loose["reliable"]
    assert english_warning({"code": "xx", "probability": 0.99, "reliable": True}).startswith(
        "The text reads as xx (xx, p=0.99)")


def test_disabled_and_settings():
    assert detect_language([ENGLISH, GERMAN], {"enabled": False}) == [None, None]
    assert english_warning(None) is None
    with pytest.raises(ValueError, match="unknown keys"):
        detect_language([ENGLISH], {"min_char": 3})
    with pytest.raises(ValueError, match="min_probability"):
        language_settings({"min_probability": 2})
    assert language_name("nl") == "Dutch" and language_name("gom") == "gom"


def test_serve_yaml_holds_the_defaults():
    cfg = yaml.safe_load((REPO / "configs" / "serve.yaml").read_text(encoding="utf-8"))
    assert language_settings(cfg["composer"]["language"]) == language_settings({})
