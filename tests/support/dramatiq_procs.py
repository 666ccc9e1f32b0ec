"""Real dramatiq processes for the worker tests: `python3 -m tests.support.dramatiq_procs ROLE URL NS QUEUE...`.

- `worker`: dramatiq's own `Worker` (1 thread) consuming QUEUE...; each message's actor `hold` sleeps
  for its argument (seconds), so the worker keeps the messages it fetched; runs until terminated.
- `send`: a process that only enqueues (`hold.send(30)` three times on each QUEUE), stays alive with its
  broker open and never consumes: dramatiq's `dispatch.lua` still writes its broker id into `__heartbeats__`.

Each prints `ready <broker_id>` once it has done its first dispatch.
"""

from __future__ import annotations

import sys
import time


def main(role: str, url: str, namespace: str, queues: list[str]) -> None:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.worker import Worker

    broker = RedisBroker(url=url, namespace=namespace)
    actors = []
    for queue in dict.fromkeys(queues):
        def hold(seconds: float = 30.0) -> None:
            """Runs for `seconds`: a message this worker holds (fetched, not acknowledged)."""
            time.sleep(seconds)

        actors.append(dramatiq.actor(hold, broker=broker, queue_name=queue, actor_name=f"hold_{queue}",
                                     max_retries=0))
    if role == "send":
        for actor in actors:
            for _ in range(3):
                actor.send(30.0)
        print("ready", broker.broker_id, flush=True)
        time.sleep(120)  # a live producer (terminated by the test)
        return
    worker = Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    print("ready", broker.broker_id, flush=True)
    try:
        time.sleep(120)
    finally:
        worker.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
