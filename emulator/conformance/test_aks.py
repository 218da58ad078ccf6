"""azure-mgmt-containerservice: run command, command results, credentials, errors."""

import base64
import io
import json
import zipfile

import pytest
import yaml
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerservice.models import RunCommandRequest

from conftest import AKS_SCOPE, RG


def run(aks, cluster, **kw):
    return aks.managed_clusters.begin_run_command(RG, cluster, RunCommandRequest(**kw), polling_interval=0).result()


def test_run_command_exit_code_and_logs(aks, emu):
    early = emu.counters()["earlyRequestsByOp"].get("aks.commandResult", 0)
    result = run(aks, "aks1", command="echo hello; echo oops >&2; exit 3")
    # azure-core's poller polls once right after the 202 (ignoring its Retry-After), then
    # honours Retry-After: exactly one early poll.
    assert emu.counters()["earlyRequestsByOp"].get("aks.commandResult", 0) == early + 1
    # Capitalized as the service answers (az compares case-sensitively).
    assert result.provisioning_state == "Succeeded"
    assert result.exit_code == 3
    assert result.logs == "hello\noops\n"
    assert result.started_at is not None and result.finished_at is not None
    assert len(result.id) == 32


def test_get_command_result(aks):
    result = run(aks, "aks1", command="echo again")
    again = aks.managed_clusters.get_command_result(RG, "aks1", result.id)
    assert again.exit_code == 0 and again.logs == "again\n"


def test_run_command_with_context_files(aks):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ns.yaml", "kind: Namespace\n")
        z.writestr("values/prod.yaml", "replicas: 3\n")
    # The Azure CLI encodes with base64.encodebytes (MIME line breaks).
    context = base64.encodebytes(buf.getvalue()).decode()
    result = run(aks, "aks1", command="cat ns.yaml values/prod.yaml", context=context)
    assert result.exit_code == 0
    assert result.logs == "kind: Namespace\nreplicas: 3\n"


def test_unsafe_context_is_rejected(aks):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../escape.txt", "x")
    with pytest.raises(HttpResponseError) as e:
        run(aks, "aks1", command="true", context=base64.b64encode(buf.getvalue()).decode())
    assert e.value.status_code == 400


def test_aad_cluster_requires_cluster_token(aks, credential):
    with pytest.raises(HttpResponseError) as e:
        run(aks, "aks-aad", command="true")
    assert e.value.status_code == 400 and "clusterToken" in e.value.message
    token = credential.get_token(AKS_SCOPE).token
    result = run(aks, "aks-aad", command="echo aad", cluster_token=token)
    assert result.exit_code == 0 and result.logs == "aad\n"
    # A token for the wrong audience is rejected too.
    arm_token = credential.get_token("https://management.azure.com/.default").token
    with pytest.raises(HttpResponseError) as e:
        run(aks, "aks-aad", command="true", cluster_token=arm_token)
    assert e.value.error.code == "InvalidClusterToken"


def test_run_command_disabled(aks):
    with pytest.raises(HttpResponseError) as e:
        run(aks, "aks-norun", command="true")
    assert e.value.status_code == 400
    assert e.value.error.code == "RunCommandDisabled"


def test_cluster_get_reports_aad_and_run_command(aks):
    mc = aks.managed_clusters.get(RG, "aks-aad")
    assert mc.aad_profile.managed is True
    assert aks.managed_clusters.get(RG, "aks-norun").api_server_access_profile.disable_run_command is True


def test_unknown_cluster_is_resource_not_found(aks):
    with pytest.raises(ResourceNotFoundError) as e:
        aks.managed_clusters.get(RG, "nope")
    assert e.value.error.code == "ResourceNotFound"
    assert "Microsoft.ContainerService/managedClusters/nope" in e.value.message


def test_unknown_resource_group(aks):
    with pytest.raises(ResourceNotFoundError) as e:
        aks.managed_clusters.get("rg-missing", "aks1")
    assert e.value.error.code == "ResourceGroupNotFound"


def decode_kubeconfig(creds):
    assert len(creds.kubeconfigs) == 1
    value = creds.kubeconfigs[0].value
    raw = value if isinstance(value, (bytes, bytearray)) else base64.b64decode(value)
    return creds.kubeconfigs[0].name, yaml.safe_load(bytes(raw).decode())


def test_list_user_and_admin_credentials(aks):
    name, kc = decode_kubeconfig(aks.managed_clusters.list_cluster_user_credentials(RG, "aks1"))
    assert name == "clusterUser"
    assert kc["clusters"][0]["cluster"]["server"].startswith("https://")
    assert "token" in kc["users"][0]["user"]
    name, kc = decode_kubeconfig(aks.managed_clusters.list_cluster_admin_credentials(RG, "aks1"))
    assert name == "clusterAdmin"
    # Named after the cluster, like the user's: `az aks get-credentials --admin` adds "-admin".
    assert kc["current-context"] == "aks1"


def test_aad_user_credentials_exec_and_azure_formats(aks):
    _, kc = decode_kubeconfig(aks.managed_clusters.list_cluster_user_credentials(RG, "aks-aad"))
    exec_user = kc["users"][0]["user"]["exec"]
    assert exec_user["command"] == "kubelogin"
    assert "6dae42f8-4368-4678-94ff-3960e28e3630" in exec_user["args"]
    _, kc = decode_kubeconfig(aks.managed_clusters.list_cluster_user_credentials(RG, "aks-aad", format="azure"))
    assert kc["users"][0]["user"]["auth-provider"]["name"] == "azure"


def test_world_rotation_changes_kubeconfig(aks, emu, world):
    cluster = world["subscriptions"][0]["resourceGroups"][0]["managedClusters"][0]
    cluster["kubeconfig"] = {"server": "https://127.0.0.1:6443", "userToken": "rotated-token"}
    emu.put("/world", json.dumps(world))
    _, kc = decode_kubeconfig(aks.managed_clusters.list_cluster_user_credentials(RG, "aks1"))
    assert kc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert kc["users"][0]["user"]["token"] == "rotated-token"


def test_in_band_failure_with_fail_first(aks, emu, world):
    cluster = {"name": "aks-flaky"}
    cluster["runCommandFailure"] = {"reason": "KubernetesPerformanceError", "failFirst": 1}
    world["subscriptions"][0]["resourceGroups"][0]["managedClusters"].append(cluster)
    emu.put("/world", json.dumps(world))
    first = run(aks, "aks-flaky", command="echo x")
    assert first.provisioning_state == "Failed"
    assert first.reason == "KubernetesPerformanceError"
    second = run(aks, "aks-flaky", command="echo x")
    assert second.provisioning_state == "Succeeded" and second.exit_code == 0


def test_in_progress_result_body_as_az_reads_it(aks, emu, world):
    # The 202 of a running command carries a RunCommandResult body; az's in-progress helper reads
    # it from the pipeline's deserialized data (the SDK itself returns None on 202).
    world["subscriptions"][0]["resourceGroups"][0]["managedClusters"].append({"name": "aks-slow", "commandDuration": 30})
    emu.put("/world", json.dumps(world))
    poller = aks.managed_clusters.begin_run_command(RG, "aks-slow", RunCommandRequest(command="true"), polling=False)
    location = poller.polling_method()._initial_response.http_response.headers["location"]
    command_id = location.split("/commandResults/")[1].split("?")[0]
    seen = {}

    def keep(pipeline_response, deserialized, headers):
        seen["status"] = pipeline_response.http_response.status_code
        seen["body"] = pipeline_response.context.get("deserialized_data")
        return deserialized

    assert aks.managed_clusters.get_command_result(RG, "aks-slow", command_id, cls=keep) is None
    assert seen["status"] == 202
    assert seen["body"]["id"] == command_id
    assert seen["body"]["properties"]["provisioningState"] == "Running"
    assert seen["body"]["properties"]["startedAt"]
