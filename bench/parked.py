"""Park many long polls at once (one connection each) and note when each one's change arrives.

Run by bench/run.py as a child process, so its event loop shares no interpreter lock with the process
that makes the changes. Reads one JSON object on stdin::

    {"base_url": ..., "auth": ..., "jobs": [[job_id, etag], ...], "wait_s": 30, "deadline_s": 60}

prints ``PARKED n`` once every request is sent, then, when every job has answered with a change (or
the deadline passed), one JSON line: ``{"woke": {job_id: unix_time}, "reparked": n, "errors": n}``.
A long poll that times out unchanged (304) is sent again at once, as a client would.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def _poll_until_changed(host: str, port: int, auth: str, job_id: str, tag: str, wait_s: int,
                              woke: dict, counts: dict, sent: asyncio.Event, pending: list) -> None:
    request = (
        f"GET /api/ai/jobs/{job_id}/status?wait={wait_s} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: {auth}\r\nIf-None-Match: {tag}\r\n\r\n"
    ).encode()
    reader = writer = None
    first = True
    while True:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            await writer.drain()
            if first:
                first = False
                pending[0] -= 1
                if pending[0] == 0:
                    sent.set()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            counts["errors"] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            if first:
                first = False
                pending[0] -= 1
                if pending[0] == 0:
                    sent.set()
            await asyncio.sleep(0.05)
            continue
        if status == 200:
            woke[job_id] = time.time()
            writer.close()
            return
        counts["reparked"] += 1  # 304: the wait ran out with no change; park again


async def _main(spec: dict) -> dict:
    split = urlsplit(spec["base_url"])
    woke: dict[str, float] = {}
    counts = {"reparked": 0, "errors": 0}
    sent = asyncio.Event()
    pending = [len(spec["jobs"])]
    tasks = [
        asyncio.create_task(_poll_until_changed(split.hostname, split.port, spec["auth"], job_id, tag,
                                                spec["wait_s"], woke, counts, sent, pending))
        for job_id, tag in spec["jobs"]
    ]
    await sent.wait()
    print(f"PARKED {len(tasks)}", flush=True)
    done, not_done = await asyncio.wait(tasks, timeout=spec["deadline_s"])
    for task in not_done:
        task.cancel()
    return {"woke": woke, **counts}


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    result = asyncio.run(_main(spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
