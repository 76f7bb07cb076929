# daffi's quick-start async caller (docs/usage/aio.md), with only its import changed
# (daffi: from daffi.aio import AsyncClient). daffi is MIT-licensed,
# Copyright (c) 2022-present Volodymyr Boiko.
import asyncio
from daffid.aio import AsyncClient


async def main():
    caller = AsyncClient(app_name="calc-caller", host="127.0.0.1", port=6001)
    conn = await caller.connect()

    result = await conn.rpc(timeout=5).multiply(6, 7)
    print(f"multiply(6, 7) = {result}")   # → 42

    await caller.stop()


if __name__ == "__main__":
    asyncio.run(main())
