"""A drawing that does not fit comes with a prompt that does, checked by drawing that prompt."""
from __future__ import annotations

import re

import marshmallow
import pytest

from backend.agents.base import PermanentAgentError
from backend.agents.canvas import CanvasInput, build_canvas_agent


class SilentReporter:
    def progress(self, percent: float, stage: str, message: str = "") -> None:
        pass

    def checkpoint(self) -> None:
        pass


def draw(prompt: str, width: int, height: int) -> dict:
    payload = CanvasInput().load({"prompt": prompt, "width": width, "height": height})
    return build_canvas_agent().run(payload, SilentReporter())


def suggestion_for(prompt: str, width: int, height: int) -> str:
    with pytest.raises(PermanentAgentError) as caught:
        draw(prompt, width, height)
    assert caught.value.code == "does_not_fit"
    match = re.search(rf"try '(.+)', which fits this {width}x{height} canvas$", caught.value.message)
    assert match, caught.value.message
    return match.group(1)


@pytest.mark.parametrize(
    "prompt, width, height",
    [
        ("60 circles", 1200, 800),
        ("a hundred stars", 1200, 800),
        ("thirty circles and thirty squares", 1200, 800),
        ("squares labelled 1 to 100", 1200, 800),
        ("a 10x10 grid of red squares", 1200, 800),
        ("flowchart: " + " -> ".join(f"s{n}" for n in range(26)), 1200, 800),
        ("fifty circles in a row", 200, 200),
        ("a huge star next to 40 tiny dots", 200, 200),
        ("a title that says Quarterly Plan above 45 columns", 300, 300),
        ("a vertical flowchart: " + " -> ".join(f"Step {n}" for n in range(20)), 200, 200),
    ],
)
def test_a_drawing_that_does_not_fit_suggests_a_prompt_that_draws_on_the_same_canvas(prompt, width, height):
    suggestion = suggestion_for(prompt, width, height)

    result = draw(suggestion, width, height)
    assert 0 < len(result["objects"]) <= 50


def test_the_suggestion_keeps_as_many_objects_as_the_canvas_can_show():
    suggestion = suggestion_for("fifty circles in a row", 200, 200)

    count = int(re.match(r"(\d+) circles in a row$", suggestion).group(1))
    assert len(draw(suggestion, 200, 200)["objects"]) == count
    with pytest.raises(PermanentAgentError, match="would be as small as"):
        draw(f"{count + 1} circles in a row", 200, 200)


def test_a_suggestion_keeps_colours_labels_and_the_grid():
    suggestion = suggestion_for("a 10x10 grid of red squares labelled 1 to 100", 1200, 800)

    squares = draw(suggestion, 1200, 800)["objects"]
    assert {square["fill"] for square in squares} == {"#e53935"}
    assert [square["text"] for square in squares] == [str(n) for n in range(1, len(squares) + 1)]
    assert "grid" in suggestion


def test_a_blank_prompt_is_refused_saying_that_it_was_trimmed():
    with pytest.raises(marshmallow.ValidationError) as caught:
        CanvasInput().load({"prompt": " \t\n "})

    (message,) = caught.value.messages["prompt"]
    assert "empty once leading and trailing spaces are trimmed" in message
