"""Webhook delivery to a local receiver that verifies every signature: (1) deliveries per second
draining a backlog of 1,000 queued events; (2) the delay from a change's commit to the receiver
(p50/p99) while 1,000 events are written one transaction each, as changes write them.
SQLite in a scratch data folder (the default install). The last line printed is one JSON object.

    python bench/webhooks.py [--events 1000] [--batch 100]
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_tmp = tempfile.TemporaryDirectory(prefix="bench-webhooks-")
# Before proctor_app reads its configuration.
os.environ["PROCTOR_DATA_DIR"] = _tmp.name
os.environ.pop("PROCTOR_DATABASE_URL", None)
os.environ["PROCTOR_WEBHOOKS_ALLOW_PRIVATE"] = "1"

from proctor_app.db import migrate, session_scope  # noqa: E402
from proctor_app.services.webhooks import endpoints  # noqa: E402
from proctor_app.services.webhooks.delivery import DeliveryLoop  # noqa: E402
from proctor_app.services.webhooks.outbox import record  # noqa: E402
from tests.support.api import make_caller  # noqa: E402
from tests.support.webhook_receiver import Receiver  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def main(events: int, batch: int) -> dict:
    migrate()
    receiver = Receiver().start()
    with session_scope() as db:
        organisation_id = make_caller(db).organisation_id
        receiver.secrets["/bench"] = endpoints.create_endpoint(db, organisation_id, receiver.url("/bench"),
                                                               ["*"]).secret
    committed: dict[str, float] = {}

    def write(count: int) -> None:
        for n in range(count):
            with session_scope() as db:
                webhook_id = record(db, "media.expiring", organisation_id, {"n": n}).public_id
            committed[webhook_id] = time.time()

    async def delivered(count: int) -> None:
        while len(receiver.acknowledged("/bench")) < count:
            await asyncio.sleep(0.02)

    # 1. A backlog: the events queued with the sender stopped, then drained.
    await asyncio.to_thread(write, events)
    sender = asyncio.create_task(DeliveryLoop(batch=batch, poll_s=0.2).run())
    started = time.time()
    await delivered(events)
    drain_s = time.time() - started
    # 2. Live: the events written (one transaction each) while the sender runs.
    live_from = len(receiver.acknowledged("/bench"))
    await asyncio.to_thread(write, events)
    await delivered(2 * events)
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    receiver.stop()
    got = receiver.acknowledged("/bench")
    delays = [(r.at - committed[r.webhook_id]) * 1000 for r in got[live_from:]]
    result = {"events": events, "batch": batch, "bad_signatures": len(receiver.bad_signatures),
              "duplicates": len(got) - len({r.webhook_id for r in got}),
              "backlog_deliveries_per_s": round(events / drain_s, 1),
              "live_delay_ms_p50": round(statistics.median(delays), 1),
              "live_delay_ms_p99": round(percentile(delays, 0.99), 1)}
    print(f"backlog of {events}: {result['backlog_deliveries_per_s']} deliveries/s; live ({events} changes "
          f"committed one by one): change -> receiver p50 {result['live_delay_ms_p50']} ms, "
          f"p99 {result['live_delay_ms_p99']} ms")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.events, args.batch))))
