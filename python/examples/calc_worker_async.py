# daffi's quick-start async worker (docs/usage/aio.md), with only its imports changed
# (daffi: from daffi import callback; from daffi.aio import AsyncClient). daffi is
# MIT-licensed, Copyright (c) 2022-present Volodymyr Boiko.
import asyncio
from daffid import callback
from daffid.aio import AsyncClient


@callback
async def multiply(a: int, b: int) -> int:
    return a * b


async def main():
    worker = AsyncClient(app_name="calc-worker", host="127.0.0.1", port=6001)
    await worker.connect()
    print("AsyncWorker connected — press Ctrl+C to stop.")
    await worker.join()


if __name__ == "__main__":
    asyncio.run(main())
