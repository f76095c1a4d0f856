import asyncio

from workers.edge.worker import main

if __name__ == "__main__":
    asyncio.run(main())
