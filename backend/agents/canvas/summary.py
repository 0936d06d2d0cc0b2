"""The one-line description of a drawing that the result carries, and the parse stage's message."""
from __future__ import annotations

import itertools

from .planning import grid_shape
from .specs import FlowchartSpec, GroupSpec, SceneSpec
from .vocabulary import counted, is_ascii_int, is_ascii_letter, plural


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _forms_range(labels: list[str]) -> bool:
    if len(labels) < 3:
        return False
    if all(is_ascii_int(label) for label in labels):
        codes = [int(label) for label in labels]
    elif all(is_ascii_letter(label) for label in labels):
        codes = [ord(label) for label in labels]
    else:
        return False
    return {b - a for a, b in itertools.pairwise(codes)} in ({1}, {-1})


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
    noun = group.noun if group.count == 1 else plural(group.noun)
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
    rows, columns = grid_shape(group)
    # A row is the default, so it is only worth saying when the prompt asked for it.
    if group.count == 1 or (rows == 1 and group.arrangement is None):
        return described
    if rows == 1:
        return f"{described} in a row"
    if columns == 1:
        return f"{described} in a column"
    return f"a {rows}x{columns} grid of {described}"


def describe_scene(spec: SceneSpec) -> str:
    """The scene in the words the parser reads, so that the description is also a prompt."""
    bands = [" next to ".join(_describe_group(group) for group in band) for band in spec.bands]
    return " above ".join(bands)


def summarize(spec: SceneSpec | FlowchartSpec) -> str:
    if isinstance(spec, FlowchartSpec):
        sentence = f"a flowchart of {len(spec.steps)} steps: " + " → ".join(spec.steps)
    else:
        sentence = describe_scene(spec)
    return sentence[0].upper() + sentence[1:]


def parse_message(spec: SceneSpec | FlowchartSpec) -> str:
    if isinstance(spec, FlowchartSpec):
        return f"Parsed a flowchart with {len(spec.steps)} steps"
    groups = [group for band in spec.bands for group in band]
    total = sum(group.count for group in groups)
    return f"Parsed {counted(total, 'object')} in {counted(len(groups), 'group')}"

