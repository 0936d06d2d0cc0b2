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
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, TypeVar

import marshmallow
from marshmallow import fields, validate

from backend.agents.base import Agent, PermanentAgentError, Reporter

MAX_OBJECTS = 50
# Anything smaller is a speck rather than a drawing, so a request that needs it does not fit.
MIN_VISIBLE_PX = 8.0
# A medium shape is one unit across; capping the unit keeps a lone shape from swamping the board.
MAX_PX_PER_UNIT = 120.0
MIN_MARGIN_PX = 8.0
MARGIN_RATIO = 0.04

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

DEFAULT_PLURAL_COUNT = 3
MAX_ROW_WITHOUT_ARRANGEMENT = 5

INK = "#37474f"
TEXT_INK = "#212121"
FLOW_BOX_FILL = "#e3f2fd"
FLOW_BOX_STROKE = "#1e88e5"
# Shading by this factor gives a stroke that reads as the same colour, only darker.
STROKE_SHADE = 0.7

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

_EXAMPLES = "try 'three red circles in a row' or 'flowchart: Start -> Validate -> End'"


@dataclass(frozen=True)
class _ShapeWord:
    type: str
    width_u: float
    height_u: float


_SHAPE_WORDS = {
    "circle": _ShapeWord("ellipse", 1.0, 1.0),
    "dot": _ShapeWord("ellipse", 0.5, 0.5),
    "oval": _ShapeWord("ellipse", 1.5, 1.0),
    "ellipse": _ShapeWord("ellipse", 1.5, 1.0),
    "square": _ShapeWord("rect", 1.0, 1.0),
    "rectangle": _ShapeWord("rect", 1.5, 1.0),
    "rect": _ShapeWord("rect", 1.5, 1.0),
    "box": _ShapeWord("rect", 1.5, 1.0),
    "column": _ShapeWord("rect", 2.0, 3.0),
    # An equilateral triangle's base is 2/sqrt(3) times its height.
    "triangle": _ShapeWord("triangle", 1.15, 1.0),
    "star": _ShapeWord("star", 1.0, 1.0),
    "line": _ShapeWord("line", 1.5, 0.0),
    "arrow": _ShapeWord("arrow", 1.5, 0.0),
}
# Font size in units for each word that asks for text rather than a shape.
_TEXT_FONT_U = {
    "text": 0.3,
    "label": 0.3,
    "word": 0.3,
    "caption": 0.25,
    "title": 0.4,
    "heading": 0.4,
}


def _plural(noun: str) -> str:
    return noun + "es" if noun.endswith(("s", "x", "ch", "sh")) else noun + "s"


# Every noun the parser knows, singular and plural, mapped to (singular, is_plural).
_NOUNS = {
    **{_plural(noun): (noun, True) for noun in [*_SHAPE_WORDS, *_TEXT_FONT_U]},
    **{noun: (noun, False) for noun in [*_SHAPE_WORDS, *_TEXT_FONT_U]},
}

_SIZE_WORDS = {
    "tiny": "tiny", "little": "small", "small": "small", "medium": "medium", "big": "large",
    "large": "large", "huge": "huge", "giant": "huge", "enormous": "huge",
}
_SIZE_FACTORS = {"tiny": 0.4, "small": 0.6, "medium": 1.0, "large": 1.6, "huge": 2.2}

_NUMBER_WORDS = {
    "one": 1, "single": 1, "two": 2, "couple": 2, "pair": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "dozen": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "hundred": 100,
}
# Tens take a following unit word: "twenty five" and "twenty-five" are both 25.
_TENS_WORDS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}
_ARTICLES = frozenset({"a", "an", "the"})
_OUTLINE_WORDS = frozenset({"outlined", "outline", "hollow", "empty", "unfilled"})

# Where the next clause goes relative to the previous one.
_PLACE_RIGHT = "right"
_PLACE_LEFT = "left"
_PLACE_BELOW = "below"
_PLACE_ABOVE = "above"

_ROW = "row"
_COLUMN = "column"
_GRID = "grid"


def _phrase_table(entries: dict[str, str]) -> tuple[tuple[tuple[str, ...], str], ...]:
    # Longest first, so "next to" wins over anything that merely starts the same way.
    phrases = [(tuple(phrase.split()), value) for phrase, value in entries.items()]
    return tuple(sorted(phrases, key=lambda entry: -len(entry[0])))


_RELATIONS = _phrase_table(
    {
        **dict.fromkeys(
            ["next to", "beside", "alongside", "and", "plus", "with", "then", ",", "&", "+",
             "to the left of", "left of"],
            _PLACE_RIGHT,
        ),
        **dict.fromkeys(["to the right of", "right of"], _PLACE_LEFT),
        **dict.fromkeys(["above", "over", "on top of", ".", ";", "!", "?"], _PLACE_BELOW),
        **dict.fromkeys(["below", "under", "underneath", "beneath"], _PLACE_ABOVE),
    }
)
_ARRANGEMENTS = _phrase_table(
    {
        **dict.fromkeys(
            ["in a row", "in one row", "in a single row", "in a line", "in one line",
             "side by side", "horizontally", "row of", "line of"],
            _ROW,
        ),
        **dict.fromkeys(
            ["in a column", "in one column", "in a stack", "vertically", "stacked", "column of",
             "stack of"],
            _COLUMN,
        ),
        **dict.fromkeys(["in a grid", "as a grid", "grid of", "grid"], _GRID),
    }
)
_LABEL_TRIGGERS = _phrase_table(
    dict.fromkeys(
        ["labelled", "labeled", "named", "called", "marked", "titled", "with the label",
         "with label", "with the labels", "with labels"],
        "label",
    )
)
_TEXT_TRIGGERS = _phrase_table(
    dict.fromkeys(
        ["that says", "which says", "that say", "which say", "says", "saying", "that reads",
         "reads", "reading", "with the text", "with text", "with the words", "with words"],
        "text",
    )
)
_BOUNDARIES = _RELATIONS + _ARRANGEMENTS + _LABEL_TRIGGERS + _TEXT_TRIGGERS
_RANGE_WORDS = frozenset({"to", "through", "thru", "-", "–", "—"})

_TOKEN_RE = re.compile(
    r'"(?P<double>[^"]*)"'
    r"|“(?P<curly>[^”]*)”"
    r"|(?<!\w)'(?P<single>[^']+)'(?!\w)"
    r"|(?P<dims>(?<!\w)[0-9]+\s*(?:x|×|by)\s*[0-9]+(?!\w))"
    r"|(?P<word>\w+(?:['’]\w+)*)"
    r"|(?P<punct>[,;:.!?()&+\-–—])"
)
_ARROW_RE = re.compile(r"-+>|=+>|→|⟶")
_TOP_TO_BOTTOM_RE = re.compile(
    r"\b(?:top[\s-]+to[\s-]+bottom|top[\s-]+down|vertical(?:ly)?|downwards?)\b", re.IGNORECASE
)
_LEFT_TO_RIGHT_RE = re.compile(r"\b(?:left[\s-]+to[\s-]+right|horizontal(?:ly)?)\b", re.IGNORECASE)
# Words that introduce a flowchart when the prompt has no colon, e.g. "draw a flowchart of".
_FLOW_INTRO_RE = re.compile(
    r"^\s*(?:\w+\s+){0,3}?(?:flow\s*-?chart|diagram|workflow)\b(?:\s+(?:of|for|showing|with))?",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------------------------------
# Specs: what the prompt asks for


@dataclass(frozen=True)
class GroupSpec:
    """Several objects of one kind, arranged together."""

    shape: str  # output object type
    noun: str  # singular noun the prompt used, for the summary
    count: int
    colour: str | None  # a key of COLOURS
    outline_only: bool
    size: str  # a key of _SIZE_FACTORS
    arrangement: str | None  # _ROW, _COLUMN, _GRID or None when the prompt did not say
    grid_dims: tuple[int, int] | None  # (rows, columns) as written in "2x3"
    labels: tuple[str | None, ...]  # one per object; the content for text objects


@dataclass(frozen=True)
class SceneSpec:
    """Groups in bands: bands run top to bottom, the groups in a band left to right."""

    bands: tuple[tuple[GroupSpec, ...], ...]


@dataclass(frozen=True)
class FlowchartSpec:
    steps: tuple[str, ...]
    direction: str | None  # LEFT_TO_RIGHT, TOP_TO_BOTTOM or None to pick whichever fits better
    colour: str | None


@dataclass(frozen=True)
class PlannedObject:
    """An output object in units; connectors keep the start-point-plus-delta convention."""

    type: str
    x_u: float
    y_u: float
    width_u: float
    height_u: float
    fill: str
    stroke: str
    text: str | None


@dataclass(frozen=True)
class Plan:
    objects: tuple[PlannedObject, ...]
    width_u: float
    height_u: float


def _unintelligible(reason: str) -> PermanentAgentError:
    return PermanentAgentError(f"{reason}; {_EXAMPLES}", code="unintelligible_prompt")


def _too_many(requested: int, what: str) -> PermanentAgentError:
    return PermanentAgentError(
        f"{what} would need {requested} objects but one canvas holds at most {MAX_OBJECTS}",
        code="does_not_fit",
    )


# ---------------------------------------------------------------------------------------------
# Stage 1: parse


@dataclass(frozen=True)
class _Token:
    text: str  # as written; a quoted string without its quotes
    kind: str  # "word", "quote", "dims" or "punct"
    start: int  # offsets into the prompt, so multi-word text keeps its own spacing
    end: int

    @property
    def key(self) -> str | None:
        # Quoted text is content, never a keyword, so it gets no key to match phrases with.
        return None if self.kind == "quote" else self.text.lower()


@dataclass(frozen=True)
class _Clause:
    placement: str | None  # where this clause goes relative to the previous one
    words: tuple[_Token, ...]
    labels: tuple[str, ...]
    text: str | None
    arrangement: str | None


def parse_prompt(prompt: str) -> SceneSpec | FlowchartSpec:
    if _ARROW_RE.search(prompt):
        return _parse_flowchart(prompt)
    return _parse_scene(prompt)


def _parse_flowchart(prompt: str) -> FlowchartSpec:
    direction = None
    if _TOP_TO_BOTTOM_RE.search(prompt):
        direction = TOP_TO_BOTTOM
    elif _LEFT_TO_RIGHT_RE.search(prompt):
        direction = LEFT_TO_RIGHT
    without_direction = _LEFT_TO_RIGHT_RE.sub(" ", _TOP_TO_BOTTOM_RE.sub(" ", prompt))
    first, *rest = _ARROW_RE.split(without_direction)
    intro, first_step = _split_flowchart_intro(first)
    steps = tuple(_clean_step(step) for step in (first_step, *rest))
    for number, step in enumerate(steps, start=1):
        if not step:
            raise _unintelligible(f"flowchart step {number} is empty")
    if 2 * len(steps) - 1 > MAX_OBJECTS:
        raise _too_many(2 * len(steps) - 1, f"a flowchart of {len(steps)} steps")
    colour = next((word for word in re.findall(r"\w+", intro.lower()) if word in COLOURS), None)
    return FlowchartSpec(steps=steps, direction=direction, colour=colour)


def _split_flowchart_intro(segment: str) -> tuple[str, str]:
    """Split "a blue flowchart: Start" into the intro and the first step."""
    if ":" in segment:
        intro, _, first_step = segment.rpartition(":")
        return intro, first_step
    match = _FLOW_INTRO_RE.match(segment)
    # "Process order -> Ship" has no intro; only split when a step is left over.
    if match and segment[match.end() :].strip():
        return match.group(0), segment[match.end() :]
    return "", segment


def _clean_step(step: str) -> str:
    return step.strip(" \t\r\n,;.()\"'“”")


def _parse_scene(prompt: str) -> SceneSpec:
    placed: list[tuple[str | None, GroupSpec]] = []
    for clause in _split_clauses(_tokenize(prompt), prompt):
        group = _group_from_clause(clause)
        if group is not None:
            placed.append((clause.placement, group))
    if not placed:
        raise _unintelligible("no shape, diagram or text found in the prompt")
    total = sum(group.count for _, group in placed)
    if total > MAX_OBJECTS:
        raise _too_many(total, "the prompt")
    return SceneSpec(bands=_arrange_bands(placed))


def _tokenize(prompt: str) -> tuple[_Token, ...]:
    tokens = []
    for match in _TOKEN_RE.finditer(prompt):
        kind = match.lastgroup
        text = match.group(kind)
        if kind in ("double", "curly", "single"):
            kind = "quote"
        tokens.append(_Token(text=text, kind=kind, start=match.start(), end=match.end()))
    return tuple(tokens)


def _match(
    tokens: tuple[_Token, ...], index: int, table: tuple[tuple[tuple[str, ...], str], ...]
) -> tuple[str, int] | None:
    """The value and length of the phrase from ``table`` that starts at ``index``, if any."""
    for phrase, value in table:
        window = tokens[index : index + len(phrase)]
        if len(window) == len(phrase) and all(t.key == w for t, w in zip(window, phrase)):
            return value, len(phrase)
    return None


def _split_clauses(tokens: tuple[_Token, ...], prompt: str) -> list[_Clause]:
    """Cut the prompt at relation words, pulling labels, text and arrangements out as it goes."""
    clauses: list[_Clause] = []
    placement: str | None = None
    words: list[_Token] = []
    labels: list[str] = []
    text: str | None = None
    arrangement: str | None = None
    index = 0
    while index < len(tokens):
        if trigger := _match(tokens, index, _LABEL_TRIGGERS):
            found, index = _read_labels(tokens, index + trigger[1], prompt)
            labels.extend(found)
        elif trigger := _match(tokens, index, _TEXT_TRIGGERS):
            found_text, index = _read_free_text(tokens, index + trigger[1], prompt)
            text = found_text or text
        elif phrase := _match(tokens, index, _ARRANGEMENTS):
            arrangement = phrase[0]
            index += phrase[1]
        elif relation := _match(tokens, index, _RELATIONS):
            clauses.append(_Clause(placement, tuple(words), tuple(labels), text, arrangement))
            placement, words, labels, text, arrangement = relation[0], [], [], None, None
            index += relation[1]
        else:
            if tokens[index].kind == "quote":
                text = tokens[index].text
            else:
                words.append(tokens[index])
            index += 1
    clauses.append(_Clause(placement, tuple(words), tuple(labels), text, arrangement))
    return clauses


def _ends_free_text(tokens: tuple[_Token, ...], index: int) -> bool:
    token = tokens[index]
    if token.kind == "quote" or _match(tokens, index, _BOUNDARIES):
        return True
    # Punctuation glued to a word ("Follow-up", "Q3:") belongs to it; loose punctuation ends text.
    return token.kind == "punct" and token.start != tokens[index - 1].end


def _read_free_text(tokens: tuple[_Token, ...], index: int, prompt: str) -> tuple[str | None, int]:
    """Read a quoted string, or the words up to the next boundary, starting at ``index``."""
    if index < len(tokens) and tokens[index].kind == "quote":
        return tokens[index].text.strip() or None, index + 1
    if index < len(tokens) and tokens[index].kind == "punct":
        return None, index
    end = index
    while end < len(tokens) and not _ends_free_text(tokens, end):
        end += 1
    if end == index:
        return None, index
    return prompt[tokens[index].start : tokens[end - 1].end], end


def _read_labels(
    tokens: tuple[_Token, ...], index: int, prompt: str
) -> tuple[tuple[str, ...], int]:
    """Read "A to F", "1-6", "A, B and C", '"Yes" and "No"' or a single label."""
    if index < len(tokens) and tokens[index].key == "from":
        index += 1
    ranged = _read_label_range(tokens, index)
    if ranged is not None:
        return ranged, index + 3
    items: list[str] = []
    while True:
        item, index = _read_free_text(tokens, index, prompt)
        if item is None:
            break
        items.append(item)
        more = (
            index + 1 < len(tokens)
            and tokens[index].key in (",", "and")
            and not _starts_new_group(tokens, index + 1)
        )
        if not more:
            break
        index += 1
    # "labelled A B C" means three labels, not one label with spaces in it.
    if len(items) == 1 and all(len(part) == 1 for part in items[0].split()):
        items = items[0].split()
    return tuple(items), index


def _read_label_range(tokens: tuple[_Token, ...], index: int) -> tuple[str, ...] | None:
    window = tokens[index : index + 3]
    if len(window) < 3 or window[1].key not in _RANGE_WORDS:
        return None
    first, last = window[0].text, window[2].text
    if _is_ascii_int(first) and _is_ascii_int(last):
        low, high, as_text = int(first), int(last), str
    elif _is_ascii_letter(first) and _is_ascii_letter(last) and first.isupper() == last.isupper():
        low, high, as_text = ord(first), ord(last), chr
    else:
        return None
    step = 1 if high >= low else -1
    if abs(high - low) + 1 > MAX_OBJECTS:
        raise _too_many(abs(high - low) + 1, f"labels {first} to {last}")
    return tuple(as_text(value) for value in range(low, high + step, step))


def _is_ascii_int(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _is_ascii_letter(text: str) -> bool:
    return len(text) == 1 and text.isascii() and text.isalpha()


def _is_modifier(token: _Token) -> bool:
    return token.kind == "dims" or (
        token.kind == "word"
        and (
            _is_ascii_int(token.text)
            or token.key in _ARTICLES
            or token.key in _NUMBER_WORDS
            or token.key in _TENS_WORDS
            or token.key in COLOURS
            or token.key in _SIZE_WORDS
            or token.key in _OUTLINE_WORDS
        )
    )


def _starts_new_group(tokens: tuple[_Token, ...], index: int) -> bool:
    """True for "two red squares" after "labelled A and": that is a new group, not a label."""
    while index < len(tokens) and _is_modifier(tokens[index]):
        index += 1
    return index < len(tokens) and tokens[index].key in _NOUNS


def _count_of(token: _Token) -> int | None:
    if token.kind != "word":
        return None
    if _is_ascii_int(token.text):
        return int(token.text)
    return _NUMBER_WORDS.get(token.key, _TENS_WORDS.get(token.key))


def _first_count(words: tuple[_Token, ...]) -> int | None:
    for index, token in enumerate(words):
        value = _count_of(token)
        if value is None:
            continue
        if token.key in _TENS_WORDS:
            following = [word for word in words[index + 1 : index + 3] if word.key != "-"]
            unit = _count_of(following[0]) if following else None
            if unit is not None and unit < 10:
                return value + unit
        return value
    return None


def _group_from_clause(clause: _Clause) -> GroupSpec | None:
    words = clause.words
    nouns = [token for token in words if token.key in _NOUNS]
    number = _first_count(words)
    dims_token = next((token for token in words if token.kind == "dims"), None)
    colour = next((token.key for token in words if token.key in COLOURS), None)
    size = next((_SIZE_WORDS[token.key] for token in words if token.key in _SIZE_WORDS), None)
    content = clause.labels or ((clause.text,) if clause.text else ())

    if nouns:
        noun, plural = _NOUNS[nouns[-1].key]
    elif content:
        noun, plural = "text", False
    elif number is None and dims_token is None and colour is None and size is None:
        # Filler such as "please" or "draw me": nothing to draw and nothing asked for.
        return None
    else:
        phrase = " ".join(token.text for token in words)
        raise _unintelligible(
            f"no shape I can draw in '{phrase}' (shapes: circle, square, rectangle, oval, "
            "triangle, star, line, arrow, text)"
        )

    grid_dims = None
    if dims_token is not None:
        rows, columns = (int(part) for part in re.findall(r"[0-9]+", dims_token.text))
        if rows < 1 or columns < 1:
            raise _unintelligible(f"a {dims_token.text} grid has no cells")
        grid_dims = (rows, columns)

    if number is not None:
        count = number
    elif grid_dims is not None:
        count = grid_dims[0] * grid_dims[1]
    elif plural:
        count = len(content) if len(content) > 1 else DEFAULT_PLURAL_COUNT
    else:
        count = 1
    if count < 1:
        raise _unintelligible(f"asked for {count} {_plural(noun)}, which draws nothing")
    if count > MAX_OBJECTS:
        raise _too_many(count, f"{count} {_plural(noun)}")

    is_text = noun in _TEXT_FONT_U
    if is_text and not content:
        raise _unintelligible(
            f"the {noun} has no words; say what it says, e.g. 'a {noun} that says \"Hello\"'"
        )
    return GroupSpec(
        shape="text" if is_text else _SHAPE_WORDS[noun].type,
        noun=noun,
        count=count,
        colour=colour,
        outline_only=any(token.key in _OUTLINE_WORDS for token in words),
        size=size or "medium",
        arrangement=clause.arrangement or (_GRID if grid_dims else None),
        grid_dims=grid_dims,
        # Text needs content, so text repeats its words; a single label goes on every shape.
        labels=_labels_per_object(content, count, cycle=is_text or len(content) == 1),
    )


def _labels_per_object(
    content: tuple[str, ...], count: int, *, cycle: bool
) -> tuple[str | None, ...]:
    if cycle:
        return tuple(content[index % len(content)] for index in range(count))
    return tuple(content[index] if index < len(content) else None for index in range(count))


def _arrange_bands(placed: list[tuple[str | None, GroupSpec]]) -> tuple[tuple[GroupSpec, ...], ...]:
    """Turn "A above B next to C" into bands; each relation is relative to the group before it."""
    bands: list[list[GroupSpec]] = [[placed[0][1]]]
    band_index = position = 0
    for placement, group in placed[1:]:
        if placement == _PLACE_RIGHT:
            position += 1
            bands[band_index].insert(position, group)
        elif placement == _PLACE_LEFT:
            bands[band_index].insert(position, group)
        elif placement == _PLACE_BELOW:
            band_index += 1
            bands.insert(band_index, [group])
            position = 0
        else:
            bands.insert(band_index, [group])
            position = 0
    return tuple(tuple(band) for band in bands)


# ---------------------------------------------------------------------------------------------
# Stage 2: plan, in units


def plan_drawing(spec: SceneSpec | FlowchartSpec, width_px: int, height_px: int) -> Plan:
    if isinstance(spec, FlowchartSpec):
        return _plan_flowchart(spec, width_px, height_px)
    bands = [_beside([_plan_group(group) for group in band], GROUP_GAP_U) for band in spec.bands]
    return _stacked(bands, BAND_GAP_U)


def _grid_shape(group: GroupSpec) -> tuple[int, int]:
    """(rows, columns) for the group's objects."""
    if group.arrangement == _ROW:
        return 1, group.count
    if group.arrangement == _COLUMN:
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
    factor = _SIZE_FACTORS[group.size]
    longest = max((len(label) for label in group.labels if label is not None), default=0)
    if group.shape == "text":
        font_u = _TEXT_FONT_U[group.noun] * factor
        return _text_width_u(longest, font_u), LINE_HEIGHT_EM * font_u
    base = _SHAPE_WORDS[group.noun]
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
    rows, columns = _grid_shape(group)
    factor = _SIZE_FACTORS[group.size]
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
        return FLOW_BOX_HEIGHT_U * _px_per_unit(plan, width_px, height_px) >= MIN_VISIBLE_PX

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


# ---------------------------------------------------------------------------------------------
# Stage 3: layout, in pixels


def _margin_px(width_px: int, height_px: int) -> float:
    return max(MIN_MARGIN_PX, MARGIN_RATIO * min(width_px, height_px))


def _px_per_unit(plan: Plan, width_px: int, height_px: int) -> float:
    margin_px = _margin_px(width_px, height_px)
    return min(
        MAX_PX_PER_UNIT,
        (width_px - 2 * margin_px) / plan.width_u,
        (height_px - 2 * margin_px) / plan.height_u,
    )


def layout_plan(plan: Plan, width_px: int, height_px: int) -> list[dict[str, Any]]:
    scale = _px_per_unit(plan, width_px, height_px)
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


# ---------------------------------------------------------------------------------------------
# Stage 4: validate


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
            f"{_counted(len(objects), 'object')} would be as small as {smallest_px:.1f} px on a "
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


# ---------------------------------------------------------------------------------------------
# Summary


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _forms_range(labels: list[str]) -> bool:
    if len(labels) < 3:
        return False
    if all(_is_ascii_int(label) for label in labels):
        codes = [int(label) for label in labels]
    elif all(_is_ascii_letter(label) for label in labels):
        codes = [ord(label) for label in labels]
    else:
        return False
    return {b - a for a, b in zip(codes, codes[1:])} in ({1}, {-1})


def _describe_labels(labels: tuple[str | None, ...], *, quoted: bool) -> str:
    present = list(dict.fromkeys(label for label in labels if label is not None))
    if _forms_range(present):
        return f"{present[0]} to {present[-1]}"
    shown = [f'"{label}"' if quoted else label for label in present]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def _describe_group(group: GroupSpec) -> str:
    adjectives = [
        group.size if group.size != "medium" else "",
        "outlined" if group.outline_only else "",
        group.colour or "",
    ]
    noun = group.noun if group.count == 1 else _plural(group.noun)
    words = " ".join(word for word in (*adjectives, noun) if word)
    if group.count > 1:
        described = f"{group.count} {words}"
    elif group.noun == "text" and words == "text":
        described = "the text"
    else:
        described = f"{_article(words)} {words}"
    if group.shape == "text":
        described += " " + _describe_labels(group.labels, quoted=True)
    elif any(label is not None for label in group.labels):
        described += " labelled " + _describe_labels(group.labels, quoted=False)
    rows, columns = _grid_shape(group)
    # A row is the default, so it is only worth saying when the prompt asked for it.
    if group.count == 1 or (rows == 1 and group.arrangement is None):
        return described
    if rows == 1:
        return f"{described} in a row"
    if columns == 1:
        return f"{described} in a column"
    return f"a {rows}x{columns} grid of {described}"


def summarize(spec: SceneSpec | FlowchartSpec) -> str:
    if isinstance(spec, FlowchartSpec):
        sentence = f"a flowchart of {len(spec.steps)} steps: " + " → ".join(spec.steps)
    else:
        bands = [" next to ".join(_describe_group(group) for group in band) for band in spec.bands]
        sentence = " above ".join(bands)
    return sentence[0].upper() + sentence[1:]


def _parse_message(spec: SceneSpec | FlowchartSpec) -> str:
    if isinstance(spec, FlowchartSpec):
        return f"Parsed a flowchart with {len(spec.steps)} steps"
    groups = [group for band in spec.bands for group in band]
    total = sum(group.count for group in groups)
    return f"Parsed {_counted(total, 'object')} in {_counted(len(groups), 'group')}"


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun if count == 1 else _plural(noun)}"


# ---------------------------------------------------------------------------------------------
# The agent


class _StrippedString(fields.String):
    """A string trimmed before validation, so "   " counts as empty."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


_CANVAS_SIDE_PX = validate.Range(min=200, max=10000)


class CanvasInput(marshmallow.Schema):
    class Meta:
        unknown = marshmallow.RAISE

    prompt = _StrippedString(required=True, validate=validate.Length(min=1, max=2000))
    width = fields.Integer(strict=True, load_default=1200, validate=_CANVAS_SIDE_PX)
    height = fields.Integer(strict=True, load_default=800, validate=_CANVAS_SIDE_PX)


_Result = TypeVar("_Result")


def _run_stage(
    reporter: Reporter,
    stage: str,
    percents: tuple[float, float],
    start_message: str,
    delay_s: float,
    work: Callable[[], _Result],
    done_message: Callable[[_Result], str],
) -> _Result:
    start_percent, end_percent = percents
    reporter.progress(start_percent, stage, start_message)
    # The pause lets someone watching the job see each stage; it is zero in tests.
    time.sleep(delay_s)
    result = work()
    reporter.progress(end_percent, stage, done_message(result))
    return result


def build_canvas_agent(*, stage_delay_s: float = 0.0) -> Agent:
    def run(payload: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
        prompt, width_px, height_px = payload["prompt"], payload["width"], payload["height"]
        spec = _run_stage(
            reporter, "parse", (5, 25), "Reading the prompt", stage_delay_s,
            lambda: parse_prompt(prompt), _parse_message,
        )
        reporter.checkpoint()
        plan = _run_stage(
            reporter, "plan", (30, 50), "Planning the drawing", stage_delay_s,
            lambda: plan_drawing(spec, width_px, height_px),
            lambda result: f"Planned {_counted(len(result.objects), 'object')}",
        )
        reporter.checkpoint()
        objects = _run_stage(
            reporter, "layout", (55, 75), f"Fitting the drawing to {width_px}x{height_px} px",
            stage_delay_s, lambda: layout_plan(plan, width_px, height_px),
            lambda result: f"Placed {_counted(len(result), 'object')}",
        )
        reporter.checkpoint()
        _run_stage(
            reporter, "validate", (80, 95), "Checking sizes, bounds and overlaps", stage_delay_s,
            lambda: validate_objects(objects, width_px, height_px),
            lambda _: f"Checked {_counted(len(objects), 'object')}: visible, inside, apart",
        )
        return {"objects": objects, "summary": summarize(spec)}

    return Agent(
        name="canvas",
        description=(
            "Turns a plain-English description into whiteboard shapes, labels and simple "
            "flowcharts, laid out without overlaps to fit the canvas."
        ),
        input_schema=CanvasInput,
        run=run,
        time_limit_s=30.0,
    )
