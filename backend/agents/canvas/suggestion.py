"""A prompt that fits, offered with ``does_not_fit``: the same drawing with fewer objects or plainer sizes.

Every candidate is written out as a prompt and run through the real stages (parse, plan, layout,
validate) on the caller's canvas, so a suggestion is only ever made when it draws.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

from backend.agents.base import PermanentAgentError

from .layout import layout_plan
from .parsing import parse_prompt
from .planning import plan_drawing
from .specs import FlowchartSpec, GroupSpec, SceneSpec
from .summary import describe_scene
from .validation import validate_objects
from .vocabulary import LEFT_TO_RIGHT, MAX_OBJECTS, TOP_TO_BOTTOM


def suggest_prompt(prompt: str, width_px: int, height_px: int) -> str | None:
    """The closest prompt to ``prompt`` found to draw on this canvas, or None when none does."""
    try:
        spec = parse_prompt(prompt, clamp=True)
    except PermanentAgentError:
        return None
    candidates = _flowcharts(spec) if isinstance(spec, FlowchartSpec) else _scenes(spec)
    tried: set[str] = set()
    for candidate in candidates:
        if candidate in tried:
            continue
        tried.add(candidate)
        if draws(candidate, width_px, height_px):
            return candidate
    return None


def draws(prompt: str, width_px: int, height_px: int) -> bool:
    """True when the agent's stages turn ``prompt`` into a valid drawing on this canvas."""
    try:
        spec = parse_prompt(prompt)
        objects = layout_plan(plan_drawing(spec, width_px, height_px), width_px, height_px)
        validate_objects(objects, width_px, height_px)
    except PermanentAgentError:
        return False
    return True


def _scenes(spec: SceneSpec) -> Iterator[str]:
    """The scene with ever fewer objects, each total first as asked, then at one size."""
    requested = sum(group.count for band in spec.bands for group in band)
    for total in range(min(requested, MAX_OBJECTS), 0, -1):
        scaled = _map_groups(spec, total / requested, None)
        yield describe_scene(scaled)
        # Layout scales every shape alike, so a huge shape can starve tiny ones of room.
        yield describe_scene(_map_groups(scaled, 1.0, "medium"))


def _map_groups(spec: SceneSpec, ratio: float, size: str | None) -> SceneSpec:
    """Each group with ``ratio`` times its objects (at least one), and at ``size`` if given."""
    return SceneSpec(
        bands=tuple(
            tuple(_with_count(group, math.floor(group.count * ratio), size or group.size) for group in band)
            for band in spec.bands
        )
    )


def _with_count(group: GroupSpec, count: int, size: str) -> GroupSpec:
    count = max(1, count)
    grid_dims = group.grid_dims
    if grid_dims is not None:
        columns = min(grid_dims[1], count)
        grid_dims = (math.ceil(count / columns), columns)
    return replace(group, count=count, size=size, grid_dims=grid_dims, labels=group.labels[:count])


def _flowcharts(spec: FlowchartSpec) -> Iterator[str]:
    """The flowchart's first steps, as many as fit, in its own direction before the other one."""
    directions = [spec.direction] if spec.direction else [LEFT_TO_RIGHT, TOP_TO_BOTTOM]
    for steps in range(len(spec.steps), 1, -1):
        for direction in dict.fromkeys([*directions, LEFT_TO_RIGHT, TOP_TO_BOTTOM]):
            yield _flowchart_prompt(replace(spec, steps=spec.steps[:steps], direction=direction))


def _flowchart_prompt(spec: FlowchartSpec) -> str:
    colour = f"{spec.colour} " if spec.colour else ""
    return f"a {colour}flowchart {spec.direction}: " + " -> ".join(spec.steps)
