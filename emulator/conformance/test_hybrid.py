"""azure-mgmt-hybridcontainerservice list*Kubeconfig long-running operations."""

import base64
import json

import pytest
import yaml
from azure.core.exceptions import HttpResponseError
from azure.mgmt.hybridcontainerservice import HybridContainerServiceMgmtClient

from conftest import ARM_SCOPE, RG, SUB

CC = f"subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Kubernetes/connectedClusters/arc1"


def client(emu, credential, **kw):
    return HybridContainerServiceMgmtClient(
        credential, SUB, base_url=emu.base, credential_scopes=[ARM_SCOPE], connection_verify=emu.ca, **kw
    )


def kubeconfig_of(result):
    assert result.status == "Succeeded"
    value = result.properties.kubeconfigs[0].value
    raw = value if isinstance(value, (bytes, bytearray)) else base64.b64decode(value)
    return yaml.safe_load(bytes(raw).decode())


@pytest.mark.parametrize("api_version", ["2024-01-01", "2026-04-01-preview"])
@pytest.mark.parametrize("admin", [False, True])
def test_list_kubeconfig_lro_finishes(emu, credential, api_version, admin):
    ops = client(emu, credential, api_version=api_version).provisioned_cluster_instances
    begin = ops.begin_list_admin_kubeconfig if admin else ops.begin_list_user_kubeconfig
    before = emu.counters()["requests"]
    poller = begin(connected_cluster_resource_uri=CC, polling_interval=0)
    kc = kubeconfig_of(poller.result())
    assert kc["clusters"][0]["cluster"]["server"].startswith("https://")
    after = emu.counters()["requests"]
    assert after.get("hybrid.listKubeconfig", 0) == before.get("hybrid.listKubeconfig", 0) + 1
    polls = sum(after.get(k, 0) - before.get(k, 0) for k in ("hybrid.operationStatus", "hybrid.operationResult"))
    assert polls >= 3  # lroPolls=2 in-progress answers, then the final one
    # Each api-version's swagger: 2024-01-01 polls Azure-AsyncOperation; 2026-04-01-preview's 202
    # has only Location (final-state-via: location), so the SDK can only poll that.
    status_polls = after.get("hybrid.operationStatus", 0) - before.get("hybrid.operationStatus", 0)
    if api_version == "2026-04-01-preview":
        assert status_polls == 0
    else:
        assert status_polls >= 1
    # The SDK built the URL without a double slash.
    mine = [r for r in emu.requests_log() if r["operation"] == "hybrid.listKubeconfig"][-1]
    assert "//" not in mine["path"] and mine["status"] == 202


def test_leading_slash_resource_uri_still_works(emu, credential):
    # azure-core strips the leading '/' of a path template, so a resource id with a leading slash
    # does not produce '//subscriptions'.
    ops = client(emu, credential).provisioned_cluster_instances
    kubeconfig_of(ops.begin_list_user_kubeconfig(connected_cluster_resource_uri="/" + CC, polling_interval=0).result())
    assert emu.counters()["requests"].get("arm.invalid", 0) == 0


def test_failed_lro_raises_with_error_code(emu, credential, world):
    rg = world["subscriptions"][0]["resourceGroups"][0]
    rg["connectedClusters"].append(
        {"name": "arc-failing", "lroPolls": 1, "lroError": {"code": "KubeconfigRetrievalFailed", "message": "unreachable"}}
    )
    emu.put("/world", json.dumps(world))
    ops = client(emu, credential).provisioned_cluster_instances
    with pytest.raises(HttpResponseError) as e:
        ops.begin_list_user_kubeconfig(connected_cluster_resource_uri=CC.replace("arc1", "arc-failing"), polling_interval=0).result()
    assert "KubeconfigRetrievalFailed" in str(e.value)


def test_unsupported_api_version(emu, credential):
    ops = client(emu, credential, api_version="2022-05-01-preview").provisioned_cluster_instances
    with pytest.raises(HttpResponseError) as e:
        ops.begin_list_user_kubeconfig(connected_cluster_resource_uri=CC, polling_interval=0).result()
    assert e.value.status_code == 400 and e.value.error.code == "NoRegisteredProviderFound"
