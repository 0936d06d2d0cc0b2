"""Stage 3, layout: plan -> pixels; one uniform scale fits the plan inside the margins, centred."""
from __future__ import annotations

from typing import Any

from .specs import Plan

# A medium shape is one unit across; capping the unit keeps a lone shape from swamping the board.
MAX_PX_PER_UNIT = 120.0
MIN_MARGIN_PX = 8.0
MARGIN_RATIO = 0.04


def _margin_px(width_px: int, height_px: int) -> float:
    return max(MIN_MARGIN_PX, MARGIN_RATIO * min(width_px, height_px))


def px_per_unit(plan: Plan, width_px: int, height_px: int) -> float:
    margin_px = _margin_px(width_px, height_px)
    return min(
        MAX_PX_PER_UNIT,
        (width_px - 2 * margin_px) / plan.width_u,
        (height_px - 2 * margin_px) / plan.height_u,
    )


def layout_plan(plan: Plan, width_px: int, height_px: int) -> list[dict[str, Any]]:
    scale = px_per_unit(plan, width_px, height_px)
    left_px = (width_px - plan.width_u * scale) / 2
    top_px = (height_px - plan.height_u * scale) / 2
    return [
        {
            "id": f"obj_{number}",
            "type": o.type,
            "x": round(left_px + o.x_u * scale, 1),
            "y": round(top_px + o.y_u * scale, 1),
            "width": round(o.width_u * scale, 1),
            "height": round(o.height_u * scale, 1),
            "fill": o.fill,
            "stroke": o.stroke,
            "text": o.text,
        }
        for number, o in enumerate(plan.objects, start=1)
    ]
