"""The job-throughput peer: raw Dramatiq no-op actors on the bench's Redis, ``dramatiq bench.noop``.

Its own namespace keeps its messages apart from the service's queues in the same Redis database.
"""
import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

NAMESPACE = "ai-jobs-bench-noop"
QUEUE_NAME = "noop"

broker = RedisBroker(url=os.environ["REDIS_URL"], namespace=NAMESPACE)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE_NAME, max_retries=0)
def noop(n: int) -> None:
    """Nothing: what Dramatiq itself costs per message."""
