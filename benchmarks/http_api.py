"""The HTTP API under load on anvil: p50/p99 latency and requests per second at concurrency 1, 8 and 32
for a customer read, a customer list page and a signed consent write (answered once its transaction is
mined), and the server's peak memory.

A home on a fresh anvil (`init`, `partner add acme`), 500 customers and 96 customers with keys of their
own, an API key; then `ledgercrm serve` in its own process (so its peak RSS is its own), and a load
generator here (httpx, asyncio: one task per concurrent client). A consent write is a customer's: she
fetched the typed data and signed it beforehand (her device's work, not the server's); what is timed is
the POST that relays it to the chain. Each keyed customer signs one consent per run, as her nonce moves
with each.

Targets on a 2-core machine: reads p99 <= 50 ms at concurrency 32; a signed consent p99 <= 250 ms;
>= 500 reads/s.

    .venv/bin/python benchmarks/http_api.py [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_table  # noqa: E402

CLI = str(Path(sys.executable).with_name("ledgercrm"))
CONCURRENCY = (1, 8, 32)
console = Console()


def prepare(home: Path, url: str, keyed: int, plain: int) -> dict[str, Any]:
    """The home, its customers and an API key (through the use cases, untimed)."""
    from api.principal import Principal
    from api.usecases import access
    from api.usecases.consent import send_staged_consents, stage_consents
    from api.usecases.customer_keys import customer_binding
    from api.usecases.customers import register_customer, register_customers, send_staged_enrolments
    from api.usecases.home import add_partner, init_home, open_crm
    from offchain.models import CustomerCreate

    init_home(home, url)
    add_partner(home, "acme")
    crm = open_crm(home)
    acme = Principal.of_partner("acme")
    try:
        keys = [Account.create() for _ in range(keyed)]
        people = [CustomerCreate(name=f"Customer {n}", email=f"c{n}@example.org") for n in range(plain)]
        members = register_customers(crm, acme, people)
        send_staged_enrolments(crm, acme)
        stage_consents(crm, acme, members, "loyalty")
        send_staged_consents(crm, acme)
        for n, key in enumerate(keys):  # her key signs its own binding, on her device
            members.append(
                register_customer(
                    crm,
                    acme,
                    CustomerCreate(name=f"Keyed {n}"),
                    signer=key.address,
                    binding=customer_binding(crm, key),
                )
            )
        key = access.issue_token(crm, acme).key
    finally:
        crm.close()
    return {"members": members[:plain], "keyed": list(zip(members[plain:], keys, strict=True)), "key": key}


async def measure(
    concurrency: int, total: int, call: Callable[[int], Awaitable[httpx.Response]]
) -> tuple[list[float], float]:
    """Latencies (ms) of `total` calls made by `concurrency` clients at once, and the wall seconds."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def client() -> None:
        for n in counter:
            start = time.perf_counter()
            answer = await call(n)
            latencies.append((time.perf_counter() - start) * 1000)
            if answer.status_code >= 300:
                raise SystemExit(
                    f"{answer.request.method} {answer.request.url}: {answer.status_code} {answer.text}"
                )

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def run(base: str, world: dict[str, Any], requests: int) -> list[tuple[str, int, float, float, float]]:
    headers = {"Authorization": f"Bearer {world['key']}"}
    members = ["0x" + m.hex() for m in world["members"]]
    rows = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as http:
        for concurrency in CONCURRENCY:
            latencies, seconds = await measure(
                concurrency, requests, lambda n: http.get(f"/v1/customers/{random.choice(members)}")
            )
            rows.append(("customer read", concurrency, *summary(latencies, seconds)))
        for concurrency in CONCURRENCY:
            latencies, seconds = await measure(
                concurrency, requests // 2, lambda n: http.get(f"/v1/customers?limit=50&cursor={page(n)}")
            )
            rows.append(("customer list page (50)", concurrency, *summary(latencies, seconds)))
        keyed = list(world["keyed"])
        for concurrency in CONCURRENCY:
            batch, keyed = keyed[: concurrency * 2], keyed[concurrency * 2 :]
            bodies = [await signed_consent(http, member, key) for member, key in batch]
            latencies, seconds = await measure(concurrency, len(bodies), relay(http, bodies))
            rows.append(("signed consent (to its mined receipt)", concurrency, *summary(latencies, seconds)))
    return rows


def relay(
    http: httpx.AsyncClient, bodies: list[dict[str, Any]]
) -> Callable[[int], Awaitable[httpx.Response]]:
    return lambda n: http.post("/v1/me/consents", **bodies[n])


def page(n: int) -> str:
    import base64

    return base64.urlsafe_b64encode(str(1 + n % 10).encode()).decode().rstrip("=")


async def signed_consent(http: httpx.AsyncClient, member: bytes, key: Any) -> dict[str, Any]:
    """Her session and her signed consent, made before the clock starts (her device's part)."""
    message = (await http.post("/v1/auth/challenge", json={"address": key.address})).json()["message"]
    signature = "0x" + key.sign_message(encode_defunct(text=message)).signature.hex()
    session = (await http.post("/v1/auth/session", json={"message": message, "signature": signature})).json()
    http.cookies.clear()
    headers = {"Authorization": f"Bearer {session['token']}"}
    typed = (
        await http.get(
            "/v1/me/consents/typed-data",
            params={"partner": "acme", "purpose": "marketing", "status": "given"},
            headers=headers,
        )
    ).json()
    signed = Account.sign_typed_data(key.key, full_message=typed).signature
    return {"headers": headers, "json": {"typed_data": typed, "signature": "0x" + bytes(signed).hex()}}


def summary(latencies: list[float], seconds: float) -> tuple[float, float, float]:
    return statistics.median(latencies), percentile(latencies, 99), len(latencies) / seconds


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400, help="read requests per concurrency level")
    args = parser.parse_args()
    from ledger.anvil import free_port, start_anvil

    keyed = 2 * sum(CONCURRENCY)
    with tempfile.TemporaryDirectory(prefix="ledgercrm-http-") as folder:
        anvil_port = free_port()
        anvil = start_anvil(anvil_port)
        server = None
        try:
            home = Path(folder) / "home"
            console.print("preparing: a home on anvil, 500 customers, 96 with keys of their own ...")
            world = prepare(home, f"http://127.0.0.1:{anvil_port}", keyed, 500)
            port = free_port()
            server = subprocess.Popen(
                [CLI, "--home", str(home), "serve", "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # the load generator is one credential: measure the server, not its per-credential limit
                env={**os.environ, "LEDGERCRM_HTTP_RATE_LIMIT": "1000000/minute"},
            )
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            else:
                raise SystemExit("the server did not start")
            rows = asyncio.run(run(base, world, args.requests))
            peak = peak_rss_mb(server.pid)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=20)
            anvil.terminate()
            anvil.wait(timeout=20)
    console.print(machine_table("HTTP API on anvil", [("Server peak RSS", f"{peak:.0f} MB")]))
    table = Table(title="Latency and throughput (one `ledgercrm serve` process, uvicorn, SQLite)")
    for column in ("request", "concurrency", "p50 ms", "p99 ms", "requests/s"):
        table.add_column(column, justify="left" if column == "request" else "right")
    for name, concurrency, p50, p99, rate in rows:
        table.add_row(name, str(concurrency), f"{p50:.1f}", f"{p99:.1f}", f"{rate:.0f}")
    console.print(table)


if __name__ == "__main__":
    main()
