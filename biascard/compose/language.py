"""The card's language: py3langid (langid.py's bundled naive-Bayes model, 140 languages).

`composer.language` (configs/serve.yaml) sets it:

- `enabled` (true): false = `detect_language` gives None for every text.
- `min_chars` (20): a text with fewer characters (whitespace runs counted as one) is never
  reliable; langid's guess for a headline-sized text is often wrong.
- `min_probability` (0.9): a reliable guess has at least this normalised probability.

py3langid 0.4's normalised probabilities are a softmax over its scores divided by
sqrt(bytes), so they stay graded for long texts: English sentences of 80 characters measured
p≈0.99, a 27-character English headline p≈0.59, a 12-character one guessed Sesotho at p≈0.32.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping

LANGUAGE_KEYS = ("enabled", "min_chars", "min_probability")
# langid's label for text without language (digits, symbols): no language to warn about
NO_LANGUAGE = "zxx"
NAMES = {
    "af": "Afrikaans", "am": "Amharic", "an": "Aragonese", "ar": "Arabic", "arz": "Egyptian Arabic",
    "ary": "Moroccan Arabic", "as": "Assamese", "az": "Azerbaijani", "ba": "Bashkir", "be": "Belarusian",
    "bg": "Bulgarian", "bn": "Bengali", "br": "Breton", "bs": "Bosnian", "ca": "Catalan", "cs": "Czech",
    "cy": "Welsh", "da": "Danish", "de": "German", "el": "Greek", "en": "English", "eo": "Esperanto",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fo": "Faroese",
    "fr": "French", "fy": "Frisian", "ga": "Irish", "gd": "Scottish Gaelic", "gl": "Galician",
    "gu": "Gujarati", "ha": "Hausa", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian",
    "ht": "Haitian Creole", "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian", "ig": "Igbo",
    "is": "Icelandic", "it": "Italian", "ja": "Japanese", "jv": "Javanese", "ka": "Georgian",
    "kk": "Kazakh", "km": "Khmer", "kn": "Kannada", "ko": "Korean", "ku": "Kurdish", "ky": "Kyrgyz",
    "la": "Latin", "lb": "Luxembourgish", "lo": "Lao", "lt": "Lithuanian", "lv": "Latvian",
    "mg": "Malagasy", "mk": "Macedonian", "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi",
    "ms": "Malay", "mt": "Maltese", "my": "Burmese", "ne": "Nepali", "nl": "Dutch", "nn": "Norwegian Nynorsk",
    "no": "Norwegian", "oc": "Occitan", "or": "Odia", "pa": "Punjabi", "pcm": "Nigerian Pidgin",
    "pl": "Polish", "ps": "Pashto", "pt": "Portuguese", "qu": "Quechua", "ro": "Romanian", "ru": "Russian",
    "rw": "Kinyarwanda", "sa": "Sanskrit", "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian",
    "so": "Somali", "sq": "Albanian", "sr": "Serbian", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil",
    "te": "Telugu", "tg": "Tajik", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "tt": "Tatar",
    "ug": "Uyghur", "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese", "xh": "Xhosa",
    "yo": "Yoruba", "yue": "Cantonese", "zh": "Chinese", "zu": "Zulu",
}

_identifier = None
_lock = threading.Lock()


def language_settings(settings: Mapping | None) -> dict:
    """composer.language with defaults filled and checked."""
    s = {"enabled": True, "min_chars": 20, "min_probability": 0.9, **(settings or {})}
    unknown = set(s) - set(LANGUAGE_KEYS)
    if unknown:
        raise ValueError(f"composer.language: unknown keys {sorted(unknown)}; known: {list(LANGUAGE_KEYS)}")
    s["min_chars"] = int(s["min_chars"])
    s["min_probability"] = float(s["min_probability"])
    if not 0.0 <= s["min_probability"] <= 1.0:
        raise ValueError("composer.language.min_probability must be in [0, 1]")
    return s


def identifier():
    """py3langid's bundled model with normalised probabilities, loaded once (~0.5 s)."""
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def language_name(code: str) -> str:
    return NAMES.get(code, code)


def detect_language(texts: list[str], settings: Mapping | None = None) -> list[dict | None]:
    """Per text {"code": ISO 639 code, "probability": float in [0, 1], "reliable": bool};
    None per text when composer.language.enabled is false."""
    s = language_settings(settings)
    if not s["enabled"]:
        return [None] * len(texts)
    ident = identifier()
    out = []
    for text in texts:
        text = " ".join((text or "").split())
        code, p = ident.classify(text)
        reliable = len(text) >= s["min_chars"] and p >= s["min_probability"] and code != NO_LANGUAGE
        out.append({"code": code, "probability": round(float(p), 4), "reliable": bool(reliable)})
    return out


def english_warning(result: Mapping | None) -> str | None:
    """A sentence for the card's warnings when the text reliably reads as another language."""
    if not result or not result.get("reliable") or result.get("code") in ("en", NO_LANGUAGE):
        return None
    code = result["code"]
    return (f"The text reads as {language_name(code)} ({code}, p={result['probability']:.2f}); "
            f"the model's heads were trained on English news, so its scores may not hold.")
