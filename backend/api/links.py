"""The one place that builds job URLs (paths relative to the API's origin)."""
from __future__ import annotations

JOBS_PATH = "/api/ai/jobs"


def job_url(job_id: str) -> str:
    return f"{JOBS_PATH}/{job_id}"


def job_links(job_id: str) -> dict[str, str]:
    base = job_url(job_id)
    return {
        "self": base,
        "status": f"{base}/status",
        "cancel": f"{base}/cancel",
        "events": f"{base}/events",
    }
