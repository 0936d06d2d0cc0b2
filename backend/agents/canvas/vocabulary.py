"""The words and limits every stage of the canvas agent shares: shapes, colours, arrangements."""
from __future__ import annotations

from dataclasses import dataclass

MAX_OBJECTS = 50
# Anything smaller is a speck rather than a drawing, so a request that needs it does not fit.
MIN_VISIBLE_PX = 8.0

COLOURS = {
    "red": "#e53935", "orange": "#fb8c00", "yellow": "#fdd835", "gold": "#ffb300",
    "green": "#43a047", "teal": "#00897b", "cyan": "#00acc1", "blue": "#1e88e5",
    "navy": "#283593", "purple": "#8e24aa", "violet": "#7e57c2", "pink": "#d81b60",
    "brown": "#6d4c41", "black": "#212121", "white": "#ffffff", "gray": "#757575",
    "grey": "#757575",
}

CONNECTORS = frozenset({"line", "arrow"})

LEFT_TO_RIGHT = "left to right"
TOP_TO_BOTTOM = "top to bottom"

# How a group's objects are arranged.
ROW = "row"
COLUMN = "column"
GRID = "grid"


@dataclass(frozen=True)
class ShapeWord:
    type: str
    width_u: float
    height_u: float


SHAPE_WORDS = {
    "circle": ShapeWord("ellipse", 1.0, 1.0),
    "dot": ShapeWord("ellipse", 0.5, 0.5),
    "oval": ShapeWord("ellipse", 1.5, 1.0),
    "ellipse": ShapeWord("ellipse", 1.5, 1.0),
    "square": ShapeWord("rect", 1.0, 1.0),
    "rectangle": ShapeWord("rect", 1.5, 1.0),
    "rect": ShapeWord("rect", 1.5, 1.0),
    "box": ShapeWord("rect", 1.5, 1.0),
    "column": ShapeWord("rect", 2.0, 3.0),
    # An equilateral triangle's base is 2/sqrt(3) times its height.
    "triangle": ShapeWord("triangle", 1.15, 1.0),
    "star": ShapeWord("star", 1.0, 1.0),
    "line": ShapeWord("line", 1.5, 0.0),
    "arrow": ShapeWord("arrow", 1.5, 0.0),
}
# Font size in units for each word that asks for text rather than a shape.
TEXT_FONT_U = {
    "text": 0.3,
    "label": 0.3,
    "word": 0.3,
    "caption": 0.25,
    "title": 0.4,
    "heading": 0.4,
}

SIZE_FACTORS = {"tiny": 0.4, "small": 0.6, "medium": 1.0, "large": 1.6, "huge": 2.2}


def plural(noun: str) -> str:
    return noun + "es" if noun.endswith(("s", "x", "ch", "sh")) else noun + "s"


def counted(count: int, noun: str) -> str:
    return f"{count} {noun if count == 1 else plural(noun)}"


def is_ascii_int(text: str) -> bool:
    return text.isascii() and text.isdigit()


def is_ascii_letter(text: str) -> bool:
    return len(text) == 1 and text.isascii() and text.isalpha()
