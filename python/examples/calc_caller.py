# daffi's quick-start caller (docs/usage/router.md), with only its import changed
# (daffi: from daffi import Client). daffi is MIT-licensed,
# Copyright (c) 2022-present Volodymyr Boiko.
from daffid import Client

if __name__ == "__main__":
    client = Client(app_name="calc-caller", host="127.0.0.1", port=6001)
    conn = client.connect()

    result = conn.rpc(timeout=5).multiply(6, 7)
    print(f"multiply(6, 7) = {result}")   # → 42

    client.stop()
