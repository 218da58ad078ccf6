"""Starts kubeinvoke-emulator for the conformance tests and hands out SDK clients.

The emulator binary comes from $KUBEINVOKE_EMULATOR (run.sh sets it). A missing binary is an
error, never a skip.
"""

import json
import os
import subprocess
import tempfile
import threading
import time

import pytest
import requests

TENANT = "00000000-0000-0000-0000-000000000001"
CLIENT = "11111111-1111-1111-1111-111111111111"
SECRET = "emulator-secret"
SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg1"
ARM_SCOPE = "https://management.azure.com/.default"
AKS_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"


class Emulator:
    def __init__(self, ready, proc, stderr_path):
        self.ready = ready
        self.proc = proc
        self.stderr_path = stderr_path
        self.base = ready["armEndpoint"]
        self.ca = ready["caFile"]
        self.control = ready["controlUrl"]

    def get(self, path):
        r = requests.get(f"{self.control}{path}", verify=self.ca, timeout=10)
        r.raise_for_status()
        return r.json()

    def put(self, path, body):
        r = requests.put(f"{self.control}{path}", data=body, verify=self.ca, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def counters(self):
        return self.get("/counters")

    def requests_log(self):
        return self.get("/requests")


def start_emulator(*args):
    binary = os.environ.get("KUBEINVOKE_EMULATOR", "")
    if not binary or not os.path.isfile(binary):
        pytest.fail(
            f"emulator binary not found: KUBEINVOKE_EMULATOR={binary!r}; "
            "build it with `cargo build -p kubeinvoke-emulator` and run via emulator/conformance/run.sh",
            pytrace=False,
        )
    state = tempfile.mkdtemp(prefix="emu-conformance-")
    stderr_path = os.path.join(state, "stderr.log")
    err = open(stderr_path, "wb")
    proc = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--state-dir", state, *args],
        stdout=subprocess.PIPE,
        stderr=err,
    )
    line = {}

    def read_ready():
        line["v"] = proc.stdout.readline()

    t = threading.Thread(target=read_ready, daemon=True)
    t.start()
    t.join(30)
    raw = line.get("v", b"")
    if not raw:
        proc.kill()
        pytest.fail(f"emulator printed no ready line; stderr: {open(stderr_path).read()[-2000:]}")
    ready = json.loads(raw)
    assert ready["event"] == "ready"
    return Emulator(ready, proc, stderr_path)


def stop_emulator(emu):
    emu.proc.terminate()
    try:
        emu.proc.wait(10)
    except subprocess.TimeoutExpired:
        emu.proc.kill()


@pytest.fixture(scope="session")
def emu():
    e = start_emulator()
    yield e
    stop_emulator(e)


@pytest.fixture(scope="session")
def credential(emu):
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(
        TENANT,
        CLIENT,
        SECRET,
        authority=emu.base,
        disable_instance_discovery=True,
        connection_verify=emu.ca,
    )


def client_kwargs(emu):
    return {
        "base_url": emu.base,
        "credential_scopes": [ARM_SCOPE],
        "connection_verify": emu.ca,
        "polling_interval": 0,
    }


@pytest.fixture(scope="session")
def aks(emu, credential):
    from azure.mgmt.containerservice import ContainerServiceClient

    return ContainerServiceClient(credential, SUB, **client_kwargs(emu))


@pytest.fixture(scope="session")
def aci(emu, credential):
    from azure.mgmt.containerinstance import ContainerInstanceManagementClient

    return ContainerInstanceManagementClient(credential, SUB, **client_kwargs(emu))


@pytest.fixture
def world(emu):
    """The current world as a dict; whatever a test PUTs is restored afterwards."""
    original = emu.get("/world")
    yield json.loads(json.dumps(original))
    emu.put("/world", json.dumps(original))


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def guard_proxy():
    from azcli import GuardProxy

    proxy = GuardProxy()
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def az_session(emu, guard_proxy, tmp_path_factory):
    """The Azure CLI with the emulator registered as a cloud (endpoint discovery) and logged in."""
    from azcli import AzCli

    cli = AzCli(emu, guard_proxy, tmp_path_factory.mktemp("az-home"))
    cli.register_cloud()
    cli.login(TENANT, CLIENT, SECRET)
    return cli


@pytest.fixture
def az(az_session, guard_proxy):
    """`az_session`, checking that the test's az calls tried to reach nothing but the emulator."""
    before = len(guard_proxy.attempts)
    yield az_session
    assert guard_proxy.attempts[before:] == [], f"az tried to leave the machine: {guard_proxy.attempts[before:]}"
