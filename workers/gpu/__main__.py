"""`python -m workers.gpu`: the gpu worker process (what `aimatrix run` spawns)."""

from __future__ import annotations

import asyncio

from workers.gpu.worker import main

if __name__ == "__main__":
    asyncio.run(main())
