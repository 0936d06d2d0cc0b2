"""Canvas agent: turns a plain-English prompt into whiteboard objects, offline and deterministic.

The agent works in four stages, each reported to the job service:

* parse    - prompt -> ``SceneSpec`` (groups of shapes and where they sit relative to each other)
             or ``FlowchartSpec`` (labelled steps joined by arrows);
* plan     - spec -> ``Plan``: objects positioned in abstract units, already free of overlaps;
* layout   - plan -> pixels: one uniform scale fits the plan inside the canvas margins, centred;
* validate - proves the drawing is usable: every object big enough to see, inside the canvas,
             and no two shapes overlapping.

Output objects
--------------
Each object is ``{"id", "type", "x", "y", "width", "height", "fill", "stroke", "text"}`` in
canvas pixels (origin top-left, y grows downwards), rounded to 0.1 px.

* ``rect``, ``ellipse``, ``triangle``, ``star`` and ``text``: ``x``/``y`` is the top-left corner
  of the bounding box. Circles are ellipses and squares are rects, both with ``width == height``.
* ``line`` and ``arrow``: ``x``/``y`` is the start point and ``width``/``height`` is the delta to
  the end point, where an arrow has its head. A horizontal connector has ``height == 0``, a
  vertical one ``width == 0``.
* ``fill`` is a hex colour or ``"none"`` (outline only); ``stroke`` is a hex colour. A ``text``
  object's ``fill`` is the text colour and its ``stroke`` is ``"transparent"``.
* ``text`` is the label drawn centred inside a shape (``null`` when unlabelled), or the content
  of a ``text`` object. Labels ("labelled A to F") live in the shape's own ``text`` field rather
  than in separate text objects, so a label cannot drift away from its shape. Rects widen to fit
  their label; other shapes leave fitting the label to the renderer.

Layout rules
------------
* "RxC grid" means R rows of C columns ("2x3" -> 2 rows of 3); objects and labels fill it row
  by row.
* Without an arrangement, up to five objects go in a row and more go in a near-square grid.
* "next to", "beside", "and" and "," put groups side by side; "above", "below" and a full stop
  put the next group in a band above or below. Bands are centred horizontally.
* A flowchart runs in the direction the prompt names ("top to bottom", "vertical", "left to
  right"); otherwise left to right on a landscape or square canvas and top to bottom on a
  portrait one, switching only when the other direction is the one that fits. Each arrow starts
  exactly on the edge of one box and ends exactly on the edge of the next.
* Unquoted text after "says" or "labelled" ends at the next relation word ("and", "above", ...);
  quote it to keep such words: 'a title that says "Salt and Pepper"'.
* At most 50 objects per canvas, and none smaller than 8 px; otherwise ``does_not_fit``.
"""

import time  # noqa: F401  (callers patch ``canvas.time.sleep`` to skip the stage pauses)

from .agent import CanvasInput, build_canvas_agent
from .layout import MARGIN_RATIO, MAX_PX_PER_UNIT, MIN_MARGIN_PX, layout_plan
from .parsing import DEFAULT_PLURAL_COUNT, parse_prompt
from .planning import (
    BAND_GAP_U,
    CHAR_WIDTH_EM,
    CONNECTOR_CELL_HEIGHT_U,
    FLOW_ARROW_LENGTH_U,
    FLOW_BOX_FILL,
    FLOW_BOX_HEIGHT_U,
    FLOW_BOX_MIN_WIDTH_U,
    FLOW_BOX_STROKE,
    GROUP_GAP_U,
    INK,
    ITEM_GAP_U,
    LABEL_FONT_U,
    LABEL_PADDING_U,
    LINE_HEIGHT_EM,
    MAX_ROW_WITHOUT_ARRANGEMENT,
    STROKE_SHADE,
    TEXT_INK,
    plan_drawing,
)
from .specs import FlowchartSpec, GroupSpec, Plan, PlannedObject, SceneSpec
from .summary import summarize
from .validation import validate_objects
from .vocabulary import (
    COLOURS,
    CONNECTORS,
    LEFT_TO_RIGHT,
    MAX_OBJECTS,
    MIN_VISIBLE_PX,
    TOP_TO_BOTTOM,
)

__all__ = [
    "BAND_GAP_U",
    "CHAR_WIDTH_EM",
    "COLOURS",
    "CONNECTORS",
    "CONNECTOR_CELL_HEIGHT_U",
    "DEFAULT_PLURAL_COUNT",
    "FLOW_ARROW_LENGTH_U",
    "FLOW_BOX_FILL",
    "FLOW_BOX_HEIGHT_U",
    "FLOW_BOX_MIN_WIDTH_U",
    "FLOW_BOX_STROKE",
    "GROUP_GAP_U",
    "INK",
    "ITEM_GAP_U",
    "LABEL_FONT_U",
    "LABEL_PADDING_U",
    "LEFT_TO_RIGHT",
    "LINE_HEIGHT_EM",
    "MARGIN_RATIO",
    "MAX_OBJECTS",
    "MAX_PX_PER_UNIT",
    "MAX_ROW_WITHOUT_ARRANGEMENT",
    "MIN_MARGIN_PX",
    "MIN_VISIBLE_PX",
    "STROKE_SHADE",
    "TEXT_INK",
    "TOP_TO_BOTTOM",
    "CanvasInput",
    "FlowchartSpec",
    "GroupSpec",
    "Plan",
    "PlannedObject",
    "SceneSpec",
    "build_canvas_agent",
    "layout_plan",
    "parse_prompt",
    "plan_drawing",
    "summarize",
    "validate_objects",
]
