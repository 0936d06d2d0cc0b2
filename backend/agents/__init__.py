"""The agent registry: which agents exist and which the configuration enables."""
from __future__ import annotations

from typing import Callable

from ..config import Config, ConfigError
from .base import Agent
from .canvas import build_canvas_agent
from .echo import build_echo_agent

_FACTORIES: dict[str, Callable[[Config], Agent]] = {
    "canvas": lambda config: build_canvas_agent(stage_delay_s=config.canvas_stage_delay_ms / 1000),
    "echo": lambda config: build_echo_agent(),
}


def build_agents(config: Config) -> dict[str, Agent]:
    """The enabled agents by name; an unknown name in ENABLED_AGENTS is a configuration error."""
    unknown = [name for name in config.enabled_agents if name not in _FACTORIES]
    if unknown:
        raise ConfigError(
            f"ENABLED_AGENTS names unknown agents {unknown}; known agents: {sorted(_FACTORIES)}"
        )
    return {name: _FACTORIES[name](config) for name in config.enabled_agents}
