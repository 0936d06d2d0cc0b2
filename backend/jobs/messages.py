"""Job messages: each job row names its latest Dramatiq message, and only that one is resent.

The row is committed before its message is sent, so a broker outage never loses an accepted job:
a message that could not be sent is marked unsent (``enqueued_at`` NULL) and the sweep sends it
again. The sweep resends a sent message only when the broker no longer holds any delivery of it
(see ``backend.queue.MessageTracker``), so a long backlog does not earn duplicates.
"""
from __future__ import annotations

from typing import Mapping

import dramatiq
from sqlalchemy import update

from ..agents.base import Agent
from ..extensions import db
from ..models import Job
from .status import JobStatus


class JobMessages:
    """Builds, sends and tracks the messages that make workers run jobs."""

    def __init__(self, *, queue, agents: Mapping[str, Agent]) -> None:
        self.queue = queue
        self.agents = agents

    def new(self, job_id: str, agent_name: str) -> dramatiq.Message:
        """A message for the job, not yet sent: its id goes into the row in the same write."""
        agent = self.agents.get(agent_name)
        return self.queue.message(job_id, time_limit_s=agent.time_limit_s if agent else None)

    def send(self, message: dramatiq.Message, *, delay_ms: int = 0) -> bool:
        """Send a message whose id is already committed on its job; if the broker is down, mark the
        job unsent so the next sweep sends it again."""
        if self.queue.send(message, delay_ms=delay_ms):
            return True
        db.session.execute(
            update(Job)
            .where(
                Job.id == message.args[0],
                Job.message_id == message.message_id,
                Job.status == JobStatus.QUEUED.value,
            )
            .values(enqueued_at=None)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        return False

    def outstanding(self, message_ids: list[str]) -> set[str]:
        """The ids among ``message_ids`` of which the broker still holds a delivery."""
        return self.queue.tracker.outstanding(message_ids)
