# daffi's quick-start worker (docs/usage/router.md), with only its import changed
# (daffi: from daffi import Client, callback). daffi is MIT-licensed,
# Copyright (c) 2022-present Volodymyr Boiko. Run a router first:
#   build/daffid -c python/examples/router
from daffid import Client, callback


@callback
def multiply(a: int, b: int) -> int:
    print(f"[worker] multiply({a}, {b})")
    return a * b


if __name__ == "__main__":
    worker = Client(app_name="calc-worker", host="127.0.0.1", port=6001)
    worker.connect()
    print("Worker connected — press Ctrl+C to stop.")
    worker.join()
