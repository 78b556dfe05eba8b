"""The bare floor for an Online Retail II import: what the standard library alone needs to parse the CSV
into one JSON record per invoice and insert those records into SQLite. Anything ledgercrm does on top
(encryption, commitments, the chain) is measured as a ratio to this."""

from __future__ import annotations

import csv
import gzip
import io
import json
import sqlite3
import time
from pathlib import Path


def floor_import(csv_gz: Path, database: Path) -> tuple[float, int]:
    """Seconds taken and invoices written (those with a customer id)."""
    start = time.perf_counter()
    invoices: dict[str, dict[str, object]] = {}
    with gzip.open(csv_gz, "rb") as raw:
        for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
            customer = row["Customer ID"]
            if not customer:
                continue
            invoice = invoices.get(row["Invoice"])
            if invoice is None:
                invoice = invoices[row["Invoice"]] = {
                    "invoice": row["Invoice"],
                    "customer": customer,
                    "country": row["Country"],
                    "date": row["InvoiceDate"],
                    "lines": [],
                }
            invoice["lines"].append(  # type: ignore[attr-defined]
                {
                    "stockCode": row["StockCode"],
                    "description": row["Description"],
                    "quantity": int(row["Quantity"]),
                    "price": float(row["Price"]),
                }
            )
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE invoices (invoice TEXT PRIMARY KEY, customer TEXT, record TEXT)")
    with connection:
        connection.executemany(
            "INSERT INTO invoices VALUES (?, ?, ?)",
            ((i["invoice"], i["customer"], json.dumps(i)) for i in invoices.values()),
        )
    connection.close()
    return time.perf_counter() - start, len(invoices)
