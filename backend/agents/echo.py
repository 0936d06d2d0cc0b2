"""The echo agent: returns its payload after a few steps; fails on purpose when asked.

Used by tests, benchmarks and synthetic checks, so every knob is bounded.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any

import marshmallow
from marshmallow import fields, validate

from .base import Agent, PermanentAgentError, Reporter, TransientAgentError

MAX_STEPS = 100
MAX_STEP_DELAY_MS = 10_000
MAX_TOTAL_DELAY_MS = 60_000


class EchoInput(marshmallow.Schema):
    payload = fields.Raw(load_default=None, metadata={"description": "Any JSON value, returned as is."})
    steps = fields.Integer(load_default=1, validate=validate.Range(min=0, max=MAX_STEPS))
    delay_ms = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_STEP_DELAY_MS))
    fail = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(["transient", "permanent"]),
        metadata={"description": "Fail on purpose after the steps: transient errors are retried."},
    )

    @marshmallow.validates_schema
    def _bounded_total(self, data: dict[str, Any], **kwargs) -> None:
        total_ms = data.get("steps", 1) * data.get("delay_ms", 0)
        if total_ms > MAX_TOTAL_DELAY_MS:
            raise marshmallow.ValidationError(
                f"steps x delay_ms is {total_ms} ms; at most {MAX_TOTAL_DELAY_MS} ms.", "delay_ms"
            )


class CrashingEchoInput(EchoInput):
    """EchoInput plus `crash`, offered only where ECHO_ALLOW_CRASH is set (fault-injection tests)."""

    crash = fields.Boolean(
        load_default=False, metadata={"description": "SIGKILL the worker process running the job."}
    )


def _run(job_input: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    if job_input.get("crash"):
        # A poison job: the worker dies mid-attempt, as on an out-of-memory kill.
        os.kill(os.getpid(), signal.SIGKILL)
    steps = job_input["steps"]
    for step in range(1, steps + 1):
        time.sleep(job_input["delay_ms"] / 1000)
        reporter.progress(100 * step / steps, "echo", f"Step {step} of {steps}")
    if job_input["fail"] == "transient":
        raise TransientAgentError("The echo agent failed on purpose (transient).")
    if job_input["fail"] == "permanent":
        raise PermanentAgentError("The echo agent failed on purpose (permanent).", code="echo_failure")
    return {"payload": job_input["payload"], "steps": steps}


def build_echo_agent(*, allow_crash: bool = False) -> Agent:
    return Agent(
        name="echo",
        description="Returns its payload after `steps` steps of `delay_ms` each; can fail on purpose.",
        input_schema=CrashingEchoInput if allow_crash else EchoInput,
        run=_run,
        time_limit_s=90.0,
    )
