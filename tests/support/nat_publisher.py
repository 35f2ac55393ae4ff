"""A Python publisher run in a network namespace (tests/support/netns.py): prints its SDP offer as
one JSON line, reads the answer as one, then prints "connected" or "failed" and sends its camera
for a few seconds. `python -m tests.support.nat_publisher`"""

import asyncio
import json
import sys

from tests.support.live_clients import NumberedCamera, Publisher, eventually

SEND_S = 4


async def main() -> None:
    publisher = Publisher({"camera": NumberedCamera()})

    async def signal(offer: str) -> str:
        print(json.dumps(offer), flush=True)
        return json.loads(await asyncio.to_thread(sys.stdin.readline))

    await publisher.start(signal)
    connected = await eventually(lambda: publisher.pc.connectionState == "connected", 20)
    print("connected" if connected else "failed", flush=True)
    if connected:
        await asyncio.sleep(SEND_S)
    await publisher.close()


if __name__ == "__main__":
    asyncio.run(main())
