"""CPU seconds used by the processes of a bench phase, read from /proc (Linux).

On a shared machine a rate moves with everyone else's load; the CPU a job costs each process barely
does, so the job-throughput phase reports both.
"""
from __future__ import annotations

import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        # The command name may hold spaces and parentheses: the fields start after the last ")".
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def group_pids(leader: int) -> list[int]:
    """The processes of the process group ``leader`` leads (a bench child started in its own session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[2]) == leader:  # pgrp
                pids.append(int(entry))
    return pids


def cpu_s(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each of ``pids`` still alive."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            used[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return used


class CpuMeter:
    """CPU used between ``start()`` and ``stop()`` by named sets of processes.

    ``sources`` maps a name to a function returning the pids to count now; a process that appears
    meanwhile counts from zero, one that ends meanwhile is lost (bench processes live through a phase).
    """

    def __init__(self, sources: dict) -> None:
        self.sources = sources
        self._before: dict[str, dict[int, float]] = {}

    def start(self) -> None:
        self._before = {name: cpu_s(pids()) for name, pids in self.sources.items()}

    def stop(self) -> dict[str, float]:
        used = {}
        for name, pids in self.sources.items():
            before = self._before.get(name, {})
            now = cpu_s(list(set(pids()) | set(before)))
            used[name] = round(sum(seconds - before.get(pid, 0.0) for pid, seconds in now.items()), 3)
        return used
