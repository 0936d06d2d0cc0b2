"""The one place that builds job URLs (paths relative to the API's origin)."""
from __future__ import annotations

from werkzeug.routing import BaseConverter

JOBS_PATH = "/api/ai/jobs"


class JobIdConverter(BaseConverter):
    """A path segment in the job id's place: any segment but the batch route's ``statuses``.

    Malformed ids still reach the views, which answer 400 naming the format; ``statuses`` does not, so
    GET /api/ai/jobs/statuses is a 405 whose Allow header lists only the batch route's POST.
    """

    regex = r"(?!statuses$)[^/]+"


def job_url(job_id: str) -> str:
    return f"{JOBS_PATH}/{job_id}"


def status_url(job_id: str) -> str:
    """The job's status monitor: what 202 answers name in Operation-Location."""
    return f"{job_url(job_id)}/status"


def job_links(job_id: str) -> dict[str, str]:
    base = job_url(job_id)
    return {
        "self": base,
        "status": status_url(job_id),
        "cancel": f"{base}/cancel",
        "events": f"{base}/events",
    }
