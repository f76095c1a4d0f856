import asyncio

from workers.twin.worker import main

if __name__ == "__main__":
    asyncio.run(main())
