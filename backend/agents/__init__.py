"""The agent registry: which agents exist and which the configuration enables."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..config import Config, ConfigError
from .base import Agent
from .canvas import build_canvas_agent
from .echo import build_echo_agent

_FACTORIES: dict[str, Callable[[Config], Agent]] = {
    "canvas": lambda config: build_canvas_agent(stage_delay_s=config.canvas_stage_delay_ms / 1000),
    "echo": lambda config: build_echo_agent(allow_crash=config.echo_allow_crash),
}


def build_agents(config: Config) -> dict[str, Agent]:
    """The enabled agents by name; an unknown name in ENABLED_AGENTS is a configuration error."""
    unknown = [name for name in config.enabled_agents if name not in _FACTORIES]
    if unknown:
        raise ConfigError(
            f"ENABLED_AGENTS names unknown agents {unknown}; known agents: {sorted(_FACTORIES)}"
        )
    agents = {name: _FACTORIES[name](config) for name in config.enabled_agents}
    for name, limit_s in config.agent_time_limits_s:
        if name in agents:
            agents[name] = replace(agents[name], time_limit_s=limit_s)
    return agents
