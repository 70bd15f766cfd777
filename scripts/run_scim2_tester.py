"""Runs scim2-tester (python-scim) against a live admin-provisioner SCIM endpoint and prints a summary.

Usage: run_scim2_tester.py BASE_URL TOKEN   (BASE_URL like http://127.0.0.1:8080/scim/v2)
Exit status 1 when any check ends in ERROR or CRITICAL.
"""

import collections
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

base_url, token = sys.argv[1], sys.argv[2]
http = Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
results = check_server(SyncSCIMClient(http), raise_exceptions=False)

counts = collections.Counter(r.status.name for r in results)
bad = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
for r in results:
    if r.status not in (Status.SUCCESS, Status.SKIPPED) or "-v" in sys.argv:
        print(f"{r.status.name:<10} {r.resource_type or '-':<5} {r.title}: {r.reason}")
print("scim2-tester summary: " + ", ".join(f"{n} {name.lower()}" for name, n in sorted(counts.items())))
print(f"{len(results) - len(bad)} passed, {len(bad)} failed")
sys.exit(1 if bad else 0)
