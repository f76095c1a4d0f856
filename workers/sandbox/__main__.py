"""`python -m workers.sandbox`: what `aimatrix run` starts for the sandbox pool."""

from __future__ import annotations

import asyncio

from workers.sandbox import main

if __name__ == "__main__":
    asyncio.run(main())
