"""Stage 1, parse: prompt -> ``SceneSpec`` or ``FlowchartSpec``."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import too_many, unintelligible
from .specs import FlowchartSpec, GroupSpec, SceneSpec
from .vocabulary import (
    COLOURS,
    COLUMN,
    GRID,
    LEFT_TO_RIGHT,
    MAX_OBJECTS,
    ROW,
    SHAPE_WORDS,
    TEXT_FONT_U,
    TOP_TO_BOTTOM,
    is_ascii_int,
    is_ascii_letter,
    plural,
)

DEFAULT_PLURAL_COUNT = 3

# Every noun the parser knows, singular and plural, mapped to (singular, is_plural).
_NOUNS = {
    **{plural(noun): (noun, True) for noun in [*SHAPE_WORDS, *TEXT_FONT_U]},
    **{noun: (noun, False) for noun in [*SHAPE_WORDS, *TEXT_FONT_U]},
}

_SIZE_WORDS = {
    "tiny": "tiny", "little": "small", "small": "small", "medium": "medium", "big": "large",
    "large": "large", "huge": "huge", "giant": "huge", "enormous": "huge",
}

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
            ROW,
        ),
        **dict.fromkeys(
            ["in a column", "in one column", "in a stack", "vertically", "stacked", "column of",
             "stack of"],
            COLUMN,
        ),
        **dict.fromkeys(["in a grid", "as a grid", "grid of", "grid"], GRID),
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


def parse_prompt(prompt: str, *, clamp: bool = False) -> SceneSpec | FlowchartSpec:
    """The spec the prompt asks for; ``does_not_fit`` when it asks for more than one canvas holds.

    With ``clamp``, over-large counts are cut to what one canvas holds instead (a spec to build a
    suggestion from); a scene may then still hold more than ``MAX_OBJECTS`` in all.
    """
    if _ARROW_RE.search(prompt):
        return _parse_flowchart(prompt, clamp)
    return _parse_scene(prompt, clamp)


def _at_most(requested: int, limit: int, what: str, clamp: bool) -> int:
    """``requested`` if within ``limit``; otherwise ``limit`` when clamping, else ``does_not_fit``."""
    if requested <= limit:
        return requested
    if clamp:
        return limit
    raise too_many(requested, what)


def _parse_flowchart(prompt: str, clamp: bool) -> FlowchartSpec:
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
            raise unintelligible(f"flowchart step {number} is empty")
    # Each step but the first brings an arrow along with its box.
    objects = 2 * len(steps) - 1
    if objects > MAX_OBJECTS:
        if not clamp:
            raise too_many(objects, f"a flowchart of {len(steps)} steps")
        steps = steps[: (MAX_OBJECTS + 1) // 2]
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


def _parse_scene(prompt: str, clamp: bool) -> SceneSpec:
    placed: list[tuple[str | None, GroupSpec]] = []
    for clause in _split_clauses(_tokenize(prompt), prompt, clamp):
        group = _group_from_clause(clause, clamp)
        if group is not None:
            placed.append((clause.placement, group))
    if not placed:
        raise unintelligible("no shape, diagram or text found in the prompt")
    total = sum(group.count for _, group in placed)
    if total > MAX_OBJECTS and not clamp:
        raise too_many(total, "the prompt")
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


def _split_clauses(tokens: tuple[_Token, ...], prompt: str, clamp: bool) -> list[_Clause]:
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
            found, index = _read_labels(tokens, index + trigger[1], prompt, clamp)
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
    tokens: tuple[_Token, ...], index: int, prompt: str, clamp: bool
) -> tuple[tuple[str, ...], int]:
    """Read "A to F", "1-6", "A, B and C", '"Yes" and "No"' or a single label."""
    if index < len(tokens) and tokens[index].key == "from":
        index += 1
    ranged = _read_label_range(tokens, index, clamp)
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


def _read_label_range(
    tokens: tuple[_Token, ...], index: int, clamp: bool
) -> tuple[str, ...] | None:
    window = tokens[index : index + 3]
    if len(window) < 3 or window[1].key not in _RANGE_WORDS:
        return None
    first, last = window[0].text, window[2].text
    if is_ascii_int(first) and is_ascii_int(last):
        low, high, as_text = int(first), int(last), str
    elif is_ascii_letter(first) and is_ascii_letter(last) and first.isupper() == last.isupper():
        low, high, as_text = ord(first), ord(last), chr
    else:
        return None
    step = 1 if high >= low else -1
    wanted = _at_most(abs(high - low) + 1, MAX_OBJECTS, f"labels {first} to {last}", clamp)
    return tuple(as_text(low + step * offset) for offset in range(wanted))


def _is_modifier(token: _Token) -> bool:
    return token.kind == "dims" or (
        token.kind == "word"
        and (
            is_ascii_int(token.text)
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
    if is_ascii_int(token.text):
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


def _group_from_clause(clause: _Clause, clamp: bool) -> GroupSpec | None:
    words = clause.words
    nouns = [token for token in words if token.key in _NOUNS]
    number = _first_count(words)
    dims_token = next((token for token in words if token.kind == "dims"), None)
    colour = next((token.key for token in words if token.key in COLOURS), None)
    size = next((_SIZE_WORDS[token.key] for token in words if token.key in _SIZE_WORDS), None)
    content = clause.labels or ((clause.text,) if clause.text else ())

    if nouns:
        noun, is_plural = _NOUNS[nouns[-1].key]
    elif content:
        noun, is_plural = "text", False
    elif number is None and dims_token is None and colour is None and size is None:
        # Filler such as "please" or "draw me": nothing to draw and nothing asked for.
        return None
    else:
        phrase = " ".join(token.text for token in words)
        raise unintelligible(
            f"no shape I can draw in '{phrase}' (shapes: circle, square, rectangle, oval, "
            "triangle, star, line, arrow, text)"
        )

    grid_dims = None
    if dims_token is not None:
        rows, columns = (int(part) for part in re.findall(r"[0-9]+", dims_token.text))
        if rows < 1 or columns < 1:
            raise unintelligible(f"a {dims_token.text} grid has no cells")
        grid_dims = (rows, columns)

    if number is not None:
        count = number
    elif grid_dims is not None:
        count = grid_dims[0] * grid_dims[1]
    elif is_plural:
        count = len(content) if len(content) > 1 else DEFAULT_PLURAL_COUNT
    else:
        count = 1
    if count < 1:
        raise unintelligible(f"asked for {count} {plural(noun)}, which draws nothing")
    count = _at_most(count, MAX_OBJECTS, f"{count} {plural(noun)}", clamp)

    is_text = noun in TEXT_FONT_U
    if is_text and not content:
        raise unintelligible(
            f"the {noun} has no words; say what it says, e.g. 'a {noun} that says \"Hello\"'"
        )
    return GroupSpec(
        shape="text" if is_text else SHAPE_WORDS[noun].type,
        noun=noun,
        count=count,
        colour=colour,
        outline_only=any(token.key in _OUTLINE_WORDS for token in words),
        size=size or "medium",
        arrangement=clause.arrangement or (GRID if grid_dims else None),
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
