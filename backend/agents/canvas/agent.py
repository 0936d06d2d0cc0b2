"""The canvas agent itself: its input schema and the four stages run in order, with progress."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import marshmallow
from marshmallow import fields, validate

from backend.agents.base import Agent, PermanentAgentError, Reporter

from .errors import does_not_fit
from .layout import layout_plan
from .parsing import parse_prompt
from .planning import plan_drawing
from .suggestion import suggest_prompt
from .summary import parse_message, summarize
from .validation import validate_objects
from .vocabulary import counted


class _StrippedString(fields.String):
    """A string trimmed before validation, so "   " counts as empty."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


_CANVAS_SIDE_PX = validate.Range(min=200, max=10000)
MAX_PROMPT_CHARS = 2000


class CanvasInput(marshmallow.Schema):
    class Meta:
        unknown = marshmallow.RAISE

    prompt = _StrippedString(
        required=True,
        validate=[
            validate.Length(
                min=1,
                error="The prompt is empty once leading and trailing spaces are trimmed; describe "
                "a drawing, e.g. 'three red circles in a row'.",
            ),
            validate.Length(max=MAX_PROMPT_CHARS),
        ],
    )
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


def _with_suggestion(
    error: PermanentAgentError, prompt: str, width_px: int, height_px: int
) -> PermanentAgentError:
    """``error`` with a prompt that does fit this canvas, when one close to ``prompt`` is found."""
    suggestion = suggest_prompt(prompt, width_px, height_px)
    if suggestion is None:
        return does_not_fit(f"{error.message}; ask for fewer objects or a larger canvas")
    return does_not_fit(
        f"{error.message}; try '{suggestion}', which fits this {width_px}x{height_px} canvas"
    )


def build_canvas_agent(*, stage_delay_s: float = 0.0) -> Agent:
    def run(payload: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
        try:
            return draw(payload, reporter)
        except PermanentAgentError as error:
            if error.code != "does_not_fit":
                raise
            width_px, height_px = payload["width"], payload["height"]
            raise _with_suggestion(error, payload["prompt"], width_px, height_px) from error

    def draw(payload: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
        prompt, width_px, height_px = payload["prompt"], payload["width"], payload["height"]
        spec = _run_stage(
            reporter, "parse", (5, 25), "Reading the prompt", stage_delay_s,
            lambda: parse_prompt(prompt), parse_message,
        )
        reporter.checkpoint()
        plan = _run_stage(
            reporter, "plan", (30, 50), "Planning the drawing", stage_delay_s,
            lambda: plan_drawing(spec, width_px, height_px),
            lambda result: f"Planned {counted(len(result.objects), 'object')}",
        )
        reporter.checkpoint()
        objects = _run_stage(
            reporter, "layout", (55, 75), f"Fitting the drawing to {width_px}x{height_px} px",
            stage_delay_s, lambda: layout_plan(plan, width_px, height_px),
            lambda result: f"Placed {counted(len(result), 'object')}",
        )
        reporter.checkpoint()
        _run_stage(
            reporter, "validate", (80, 95), "Checking sizes, bounds and overlaps", stage_delay_s,
            lambda: validate_objects(objects, width_px, height_px),
            lambda _: f"Checked {counted(len(objects), 'object')}: visible, inside, apart",
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
