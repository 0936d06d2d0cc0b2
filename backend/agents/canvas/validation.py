"""Stage 4, validate: every object big enough to see, inside the canvas, and no two shapes overlapping."""
from __future__ import annotations

import math
from typing import Any

from backend.agents.base import PermanentAgentError

from .vocabulary import CONNECTORS, MIN_VISIBLE_PX, counted


def _visible_size_px(obj: dict[str, Any]) -> float:
    if obj["type"] in CONNECTORS:
        return math.hypot(obj["width"], obj["height"])
    return min(obj["width"], obj["height"])


def _inside(obj: dict[str, Any], width_px: int, height_px: int) -> bool:
    # Works for connectors too: their far end is start plus delta, whatever the delta's sign.
    xs = (obj["x"], obj["x"] + obj["width"])
    ys = (obj["y"], obj["y"] + obj["height"])
    return min(xs) >= 0 and max(xs) <= width_px and min(ys) >= 0 and max(ys) <= height_px


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    # Touching edges do not count: only a shared area hides part of a shape.
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def validate_objects(objects: list[dict[str, Any]], width_px: int, height_px: int) -> None:
    """Raise ``does_not_fit`` unless every object is visible, inside the canvas and apart."""
    smallest_px = min(_visible_size_px(obj) for obj in objects)
    if smallest_px < MIN_VISIBLE_PX:
        raise PermanentAgentError(
            f"{counted(len(objects), 'object')} would be as small as {smallest_px:.1f} px on a "
            f"{width_px}x{height_px} canvas (minimum {MIN_VISIBLE_PX:.0f} px); "
            "ask for fewer objects, shorter text or a larger canvas",
            code="does_not_fit",
        )
    for obj in objects:
        if not _inside(obj, width_px, height_px):
            raise PermanentAgentError(
                f"{obj['id']} would fall outside the {width_px}x{height_px} canvas",
                code="does_not_fit",
            )
    solid = [obj for obj in objects if obj["type"] not in CONNECTORS]
    for index, first in enumerate(solid):
        for second in solid[index + 1 :]:
            if _overlap(first, second):
                raise PermanentAgentError(
                    f"{first['id']} and {second['id']} would overlap", code="does_not_fit"
                )
