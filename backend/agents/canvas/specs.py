"""What passes between the stages: specs (what the prompt asks for) and plans (where it goes)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupSpec:
    """Several objects of one kind, arranged together."""

    shape: str  # output object type
    noun: str  # singular noun the prompt used, for the summary
    count: int
    colour: str | None  # a key of COLOURS
    outline_only: bool
    size: str  # a key of SIZE_FACTORS
    arrangement: str | None  # ROW, COLUMN, GRID or None when the prompt did not say
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
