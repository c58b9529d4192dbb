"""The files packaged in eval/templates/: the report's jinja2 templates and the anchors,
targets and ablations tables (JSON)."""
from __future__ import annotations

from importlib import resources


def template_text(name: str) -> str:
    return (resources.files("biascard.eval") / "templates" / name).read_text(encoding="utf-8")
