"""The bias card (core): its schema, the contract (validation, the concepts), and its text and HTML layouts."""
from .contract import (  # noqa: F401
    CONCEPT_LABELS,
    CONCEPTS,
    ENTITY_KINDS,
    FIELDS_1_1,
    HUMAN_MODEL,
    METHODS,
    SCHEMA_PATH,
    SCHEMA_VERSION,
    SCHEMA_VERSIONS,
    SDG,
    SDG_NAMES,
    Card,
    CardError,
    CognitiveConcept,
    Entities,
    Entity,
    EntitySpan,
    Evidence,
    KeyQuestion,
    ModelInfo,
    PoliticalLeaning,
    Span,
    Summary,
    Topic,
    has_1_1_fields,
    is_valid,
    load_schema,
    normalize,
    sdg_goal,
    validate,
)
from .text import parse_text, render_text  # noqa: F401


def render_html(card: dict) -> str:
    """A self-contained HTML page for a valid card (jinja2 is imported only when used)."""
    from .html import render_html as _render

    return _render(card)


__all__ = [
    "CONCEPT_LABELS", "CONCEPTS", "ENTITY_KINDS", "FIELDS_1_1", "HUMAN_MODEL", "METHODS", "SCHEMA_PATH",
    "SCHEMA_VERSION", "SCHEMA_VERSIONS", "SDG", "SDG_NAMES",
    "Card", "CardError", "CognitiveConcept", "Entities", "Entity", "EntitySpan", "Evidence", "KeyQuestion",
    "ModelInfo", "PoliticalLeaning", "Span", "Summary", "Topic",
    "has_1_1_fields", "is_valid", "load_schema", "normalize", "sdg_goal", "validate",
    "parse_text", "render_text", "render_html",
]
