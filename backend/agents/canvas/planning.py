"""Stage 2, plan: spec -> ``Plan``, objects positioned in abstract units and already apart."""
from __future__ import annotations

import math
from dataclasses import replace

from .layout import px_per_unit
from .specs import FlowchartSpec, GroupSpec, Plan, PlannedObject, SceneSpec
from .vocabulary import (
    COLOURS,
    COLUMN,
    CONNECTORS,
    LEFT_TO_RIGHT,
    MIN_VISIBLE_PX,
    ROW,
    SHAPE_WORDS,
    SIZE_FACTORS,
    TEXT_FONT_U,
    TOP_TO_BOTTOM,
)

# Gaps scale with the shapes they separate, so shrinking to fit never makes shapes touch.
ITEM_GAP_U = 0.25
GROUP_GAP_U = 0.5
BAND_GAP_U = 0.5
# Connectors have no height of their own but still need a row to sit in.
CONNECTOR_CELL_HEIGHT_U = 0.3

# Text size estimates for an average sans-serif font; the renderer owns the exact metrics.
CHAR_WIDTH_EM = 0.6
LINE_HEIGHT_EM = 1.4
LABEL_FONT_U = 0.3
LABEL_PADDING_U = 0.2

FLOW_BOX_MIN_WIDTH_U = 1.6
FLOW_BOX_HEIGHT_U = 0.8
# As long as a box is tall, so an arrow stays visible for exactly as long as the boxes do.
FLOW_ARROW_LENGTH_U = 0.8

MAX_ROW_WITHOUT_ARRANGEMENT = 5

INK = "#37474f"
TEXT_INK = "#212121"
FLOW_BOX_FILL = "#e3f2fd"
FLOW_BOX_STROKE = "#1e88e5"
# Shading by this factor gives a stroke that reads as the same colour, only darker.
STROKE_SHADE = 0.7


def plan_drawing(spec: SceneSpec | FlowchartSpec, width_px: int, height_px: int) -> Plan:
    if isinstance(spec, FlowchartSpec):
        return _plan_flowchart(spec, width_px, height_px)
    bands = [_beside([_plan_group(group) for group in band], GROUP_GAP_U) for band in spec.bands]
    return _stacked(bands, BAND_GAP_U)


def grid_shape(group: GroupSpec) -> tuple[int, int]:
    """(rows, columns) for the group's objects."""
    if group.arrangement == ROW:
        return 1, group.count
    if group.arrangement == COLUMN:
        return group.count, 1
    if group.grid_dims is not None:
        rows, columns = group.grid_dims
        return max(rows, math.ceil(group.count / columns)), columns
    if group.arrangement is None and group.count <= MAX_ROW_WITHOUT_ARRANGEMENT:
        return 1, group.count
    columns = math.ceil(math.sqrt(group.count))
    return math.ceil(group.count / columns), columns


def _text_width_u(characters: int, font_u: float) -> float:
    return max(characters, 1) * CHAR_WIDTH_EM * font_u


def _label_box_width_u(characters: int) -> float:
    return _text_width_u(characters, LABEL_FONT_U) + 2 * LABEL_PADDING_U


def _item_size_u(group: GroupSpec) -> tuple[float, float]:
    factor = SIZE_FACTORS[group.size]
    longest = max((len(label) for label in group.labels if label is not None), default=0)
    if group.shape == "text":
        font_u = TEXT_FONT_U[group.noun] * factor
        return _text_width_u(longest, font_u), LINE_HEIGHT_EM * font_u
    base = SHAPE_WORDS[group.noun]
    width_u, height_u = base.width_u * factor, base.height_u * factor
    if group.shape == "rect" and longest:
        needed_u = _label_box_width_u(longest)
        if base.width_u == base.height_u:
            # A square stays square while it grows to fit its label.
            return max(width_u, needed_u), max(height_u, needed_u)
        return max(width_u, needed_u), height_u
    return width_u, height_u


def _shade(colour_hex: str) -> str:
    channels = (int(colour_hex[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(channel * STROKE_SHADE):02x}" for channel in channels)


def _paint(group: GroupSpec) -> tuple[str, str]:
    """(fill, stroke) for the group's objects."""
    colour_hex = COLOURS.get(group.colour)
    if group.shape == "text":
        return colour_hex or TEXT_INK, "transparent"
    if group.shape in CONNECTORS:
        return "none", colour_hex or INK
    if colour_hex is None:
        return "none", INK
    if group.outline_only:
        return "none", colour_hex
    return colour_hex, _shade(colour_hex)


def _plan_group(group: GroupSpec) -> Plan:
    rows, columns = grid_shape(group)
    factor = SIZE_FACTORS[group.size]
    item_width_u, item_height_u = _item_size_u(group)
    cell_height_u = max(item_height_u, CONNECTOR_CELL_HEIGHT_U * factor)
    gap_u = ITEM_GAP_U * factor
    fill, stroke = _paint(group)
    objects = []
    for index, label in enumerate(group.labels):
        row, column = divmod(index, columns)
        x_u = column * (item_width_u + gap_u)
        y_u = row * (cell_height_u + gap_u)
        if group.shape in CONNECTORS:
            y_u += cell_height_u / 2
        objects.append(
            PlannedObject(group.shape, x_u, y_u, item_width_u, item_height_u, fill, stroke, label)
        )
    width_u = columns * item_width_u + (columns - 1) * gap_u
    height_u = rows * cell_height_u + (rows - 1) * gap_u
    return Plan(tuple(objects), width_u, height_u)


def _shifted(objects: tuple[PlannedObject, ...], dx_u: float, dy_u: float) -> list[PlannedObject]:
    return [replace(o, x_u=o.x_u + dx_u, y_u=o.y_u + dy_u) for o in objects]


def _beside(plans: list[Plan], gap_u: float) -> Plan:
    """Plans left to right, centred vertically."""
    height_u = max(plan.height_u for plan in plans)
    objects: list[PlannedObject] = []
    x_u = 0.0
    for plan in plans:
        objects.extend(_shifted(plan.objects, x_u, (height_u - plan.height_u) / 2))
        x_u += plan.width_u + gap_u
    return Plan(tuple(objects), x_u - gap_u, height_u)


def _stacked(plans: list[Plan], gap_u: float) -> Plan:
    """Plans top to bottom, centred horizontally."""
    width_u = max(plan.width_u for plan in plans)
    objects: list[PlannedObject] = []
    y_u = 0.0
    for plan in plans:
        objects.extend(_shifted(plan.objects, (width_u - plan.width_u) / 2, y_u))
        y_u += plan.height_u + gap_u
    return Plan(tuple(objects), width_u, y_u - gap_u)


def _plan_flowchart(flow: FlowchartSpec, width_px: int, height_px: int) -> Plan:
    if flow.direction is not None:
        return _flowchart_towards(flow, flow.direction)
    across = _flowchart_towards(flow, LEFT_TO_RIGHT)
    down = _flowchart_towards(flow, TOP_TO_BOTTOM)
    preferred, other = (across, down) if width_px >= height_px else (down, across)

    def readable(plan: Plan) -> bool:
        return FLOW_BOX_HEIGHT_U * px_per_unit(plan, width_px, height_px) >= MIN_VISIBLE_PX

    # Follow the canvas's shape unless only the other direction keeps the boxes big enough to see.
    if not readable(preferred) and readable(other):
        return other
    return preferred


def _flowchart_towards(flow: FlowchartSpec, direction: str) -> Plan:
    box_width_u = max(FLOW_BOX_MIN_WIDTH_U, _label_box_width_u(max(map(len, flow.steps))))
    colour_hex = COLOURS.get(flow.colour)
    fill, stroke = FLOW_BOX_FILL, FLOW_BOX_STROKE
    if colour_hex is not None:
        fill, stroke = colour_hex, _shade(colour_hex)
    across = direction == LEFT_TO_RIGHT
    pitch_u = (box_width_u if across else FLOW_BOX_HEIGHT_U) + FLOW_ARROW_LENGTH_U
    arrow_u = FLOW_ARROW_LENGTH_U
    objects = []
    for index, step in enumerate(flow.steps):
        x_u, y_u = (index * pitch_u, 0.0) if across else (0.0, index * pitch_u)
        if index > 0:
            if across:
                start_u, delta_u = (x_u - arrow_u, FLOW_BOX_HEIGHT_U / 2), (arrow_u, 0.0)
            else:
                start_u, delta_u = (box_width_u / 2, y_u - arrow_u), (0.0, arrow_u)
            objects.append(PlannedObject("arrow", *start_u, *delta_u, "none", INK, None))
        objects.append(
            PlannedObject("rect", x_u, y_u, box_width_u, FLOW_BOX_HEIGHT_U, fill, stroke, step)
        )
    span_u = len(flow.steps) * pitch_u - FLOW_ARROW_LENGTH_U
    if across:
        return Plan(tuple(objects), span_u, FLOW_BOX_HEIGHT_U)
    return Plan(tuple(objects), box_width_u, span_u)
