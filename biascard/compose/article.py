"""The composer's input: one article and the optional metadata a card carries."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Article:
    text: str
    title: str | None = None
    source: str | None = None
    id: str | None = None
    # the rendering asked for inside a JSON body ("format": "text"); not part of the card
    format: str | None = None
