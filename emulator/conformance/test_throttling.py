"""ARM throttling as the Python SDK sees it: 429 + Retry-After, retried by azure-core."""

import json

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerservice import ContainerServiceClient

from conftest import ARM_SCOPE, RG, SUB, start_emulator, stop_emulator


@pytest.fixture
def tight_emu():
    e = start_emulator("--write-burst", "1", "--write-rate", "1")
    yield e
    stop_emulator(e)


def make_client(emu, credential_factory, **kw):
    return ContainerServiceClient(
        credential_factory(emu), SUB, base_url=emu.base, credential_scopes=[ARM_SCOPE], connection_verify=emu.ca, **kw
    )


def cred(emu):
    from azure.identity import ClientSecretCredential

    from conftest import CLIENT, SECRET, TENANT

    return ClientSecretCredential(TENANT, CLIENT, SECRET, authority=emu.base, disable_instance_discovery=True, connection_verify=emu.ca)


def test_sdk_retries_throttled_writes_after_retry_after(tight_emu):
    client = make_client(tight_emu, cred)
    client.managed_clusters.list_cluster_user_credentials(RG, "aks1")
    # The bucket is empty now: ARM answers 429 SubscriptionRequestsThrottled; azure-core waits
    # Retry-After and retries successfully.
    client.managed_clusters.list_cluster_user_credentials(RG, "aks1")
    c = tight_emu.counters()
    assert c["throttled429"] >= 1
    assert c["status"]["aks.listUserCredential"]["429"] >= 1
    assert c["earlyRequests"] == 0, "azure-core honours Retry-After on 429"


def test_throttled_error_shape_without_retries(tight_emu):
    client = make_client(tight_emu, cred, retry_total=0)
    client.managed_clusters.list_cluster_user_credentials(RG, "aks1")
    with pytest.raises(HttpResponseError) as e:
        client.managed_clusters.list_cluster_user_credentials(RG, "aks1")
    assert e.value.status_code == 429
    assert e.value.error.code == "SubscriptionRequestsThrottled"
    assert int(e.value.response.headers["Retry-After"]) >= 1
    assert e.value.response.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"


def test_injected_503_is_retried(emu, aks):
    emu.put("/faults", json.dumps({"aks.get": {"error503Rate": 1.0, "retryAfter": 1}}))
    try:
        with pytest.raises(HttpResponseError) as e:
            aks.managed_clusters.get(RG, "aks1", retry_total=1)
        assert e.value.status_code == 503
        assert e.value.error.code == "ServiceUnavailable"
    finally:
        emu.put("/faults", "{}")
    assert aks.managed_clusters.get(RG, "aks1").name == "aks1"
