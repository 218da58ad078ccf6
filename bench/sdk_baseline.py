"""Scenario C of `make bench`: the same AKS run commands the way a user does it without kubeinvoke,
with the official Azure SDK for Python: `begin_run_command(...).result()` in a thread pool.

Prints one JSON line: wall time, own CPU seconds and peak RSS, and per call the moment it was
submitted and the moment `.result()` returned (the driver matches them with the emulator's log
through the correlation id each call sends).
"""

import argparse
import json
import resource
import sys
import uuid
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.identity import ClientSecretCredential
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.containerservice.models import RunCommandRequest


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--arm", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--commands", type=int, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--tenant", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret", required=True)
    p.add_argument("--subscription", required=True)
    p.add_argument("--resource-group", required=True)
    p.add_argument("--cluster", required=True)
    p.add_argument("--max-resubmits", type=int, default=20)
    args = p.parse_args()

    credential = ClientSecretCredential(
        args.tenant,
        args.client_id,
        args.client_secret,
        authority=args.arm,
        disable_instance_discovery=True,
        connection_verify=args.ca,
    )
    client = ContainerServiceClient(
        credential,
        args.subscription,
        base_url=args.arm,
        credential_scopes=[args.arm.rstrip("/") + "/.default"],
        connection_verify=args.ca,
    )
    resubmits = 0
    lock = threading.Lock()

    def run(i: int, submitted: float) -> dict:
        nonlocal resubmits
        # ARM wants a GUID; a deterministic one per call lets the driver match the emulator's log.
        corr = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kubeinvoke-bench/sdk/{i}"))
        for attempt in range(args.max_resubmits + 1):
            try:
                result = client.managed_clusters.begin_run_command(
                    args.resource_group,
                    args.cluster,
                    RunCommandRequest(command=f"echo sdk-{i}"),
                    headers={"x-ms-correlation-request-id": corr},
                ).result()
                return {"id": corr, "submitted": submitted, "done": time.time(), "ok": (result.provisioning_state or "").lower() == "succeeded"}
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as e:
                # What a careful script does after azure-core's own retries give up on a 429.
                status = getattr(e, "status_code", None)
                if attempt == args.max_resubmits or status not in (None, 429, 500, 503):
                    return {"id": corr, "submitted": submitted, "done": time.time(), "ok": False, "error": str(e)[:200]}
                with lock:
                    resubmits += 1
                time.sleep(1)
        return {"id": corr, "submitted": submitted, "done": time.time(), "ok": False}

    start = time.time()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        futures = [pool.submit(run, i, time.time()) for i in range(args.commands)]
        calls = [f.result() for f in futures]
    seconds = time.time() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    from importlib.metadata import version

    print(
        json.dumps(
            {
                "seconds": seconds,
                "succeeded": sum(1 for c in calls if c["ok"]),
                "cpuSeconds": usage.ru_utime + usage.ru_stime,
                "systemCpuSeconds": usage.ru_stime,
                "peakRssMiB": usage.ru_maxrss / 1024.0,
                "resubmits": resubmits,
                "python": sys.version.split()[0],
                "sdk": {
                    name: version(name)
                    for name in ("azure-mgmt-containerservice", "azure-core", "azure-identity")
                },
                "errors": [c["error"] for c in calls if "error" in c][:5],
                "calls": calls,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
