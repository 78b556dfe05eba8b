"""An evidence bundle of the Online Retail II import, made and verified on anvil, next to `verify --all
--auditor` on the same data.

A fresh anvil and home (SQLite in a temp folder), partner `retail`, the full import (customers, loyalty
consent, one interaction per invoice, points, everything anchored); then, each timed on its own:

- `verify --all --auditor` in the home (`api.usecases.verification.verify`, no key opened);
- `audit bundle` (the whole log and every record of the partner), written plain and gzip-compressed;
- `audit verify` of the compressed file against the chain, through a second client that knows only the
  node's URL and the deployment manifest (what an auditor holds).

    .venv/bin/python benchmarks/audit_bundle.py [--data PATH]

Targets (issue #29): the bundle under 30 MB; verifying it no slower than `verify --all` in the home.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "online_retail_II.csv.gz"
TARGET_BYTES = 30 * 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    if not args.data.exists():
        print(f"skipped: {args.data} is not on this machine (see ../shared/data/README.md)")
        return 0

    from api.context import Crm
    from api.principal import Principal
    from api.settings import Settings
    from api.usecases import audit
    from api.usecases.imports import import_online_retail
    from api.usecases.partners import register_partner
    from api.usecases.verification import verify
    from ledger.anvil import free_port, start_anvil
    from ledger.backends import RpcBackend
    from ledger.coalition import Coalition

    retail = Principal.of_partner("retail")
    port = free_port()
    process = start_anvil(port)
    url = f"http://127.0.0.1:{port}"
    try:
        backend = RpcBackend(url)
        coalition = Coalition.deploy(backend, founders=backend.accounts[:1])
        with tempfile.TemporaryDirectory() as folder:
            home = Path(folder)
            crm = Crm.open(Settings(environment="development", home=home), coalition)
            try:
                register_partner(crm, "retail", backend.accounts[0])
                start = time.perf_counter()
                import_online_retail(crm, retail, args.data)
                imported = time.perf_counter() - start
                print(f"import: {imported:.1f} s")

                start = time.perf_counter()
                report = verify(crm, Principal.operator(), auditor=True)
                verify_all = time.perf_counter() - start
                print(
                    f"verify --all --auditor: {verify_all:.2f} s, {len(report.results):,} results,"
                    f" {len(report.failures)} failures"
                )

                start = time.perf_counter()
                bundle = audit.make_bundle(crm, retail)
                made = time.perf_counter() - start
                plain = audit.write_bundle(bundle, home / "retail.json")
                packed_start = time.perf_counter()
                packed = audit.write_bundle(bundle, home / "retail.json.gz")
                compress = time.perf_counter() - packed_start
                leaves = len(bundle["log"]["leaves"])
                print(
                    f"audit bundle: {made:.2f} s to make (+{compress:.2f} s to compress), {leaves:,} leaves,"
                    f" {len(bundle['log']['heads']):,} heads, {len(bundle['consentReceipts']):,} consent"
                    f" receipts, {len(bundle['pointEvents']):,} point events"
                )
                print(
                    f"bundle size: {plain / 1e6:.1f} MB plain JSON, {packed / 1e6:.1f} MB gzip"
                    f" (target < {TARGET_BYTES / 2**20:.0f} MiB)"
                )
                deployment = home / "deployment.json"
                coalition.deployment.save(deployment)
            finally:
                crm.close()

            start = time.perf_counter()
            auditor_chain = audit.open_auditor_chain(url, deployment)
            checked = audit.audit_verify(auditor_chain, home / "retail.json.gz")
            verified = time.perf_counter() - start
            print(
                f"audit verify (gzip file, a client with only the URL and manifest): {verified:.2f} s,"
                f" {len(checked.findings)} findings"
            )
            for line in checked.checked:
                print(f"  checked {line}")
            for finding in checked.findings[:10]:
                print(f"  FINDING {finding.record}: {finding.detail}")
            print(
                f"verify of the bundle / verify --all --auditor: {verified / verify_all:.2f} (target <= 1);"
                f" gzip bundle {'under' if packed < TARGET_BYTES else 'OVER'} 30 MiB, plain JSON"
                f" {'under' if plain < TARGET_BYTES else 'OVER'} 30 MiB"
            )
    finally:
        process.terminate()
        process.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
