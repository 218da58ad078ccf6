"""The real Azure CLI against the emulator as a custom cloud: cloud register, service principal
login, aks command invoke/result, aks get-credentials, container exec (through a pseudo-terminal).

az prints what it reads, so these tests check az's own output and exit codes: that is where a
difference between the emulator and Azure shows (a lower-case state, an empty 202, a context
name)."""

import json
import os
import re

import pexpect
import pytest
import yaml

from azcli import CLOUD, AzCli, GuardProxy
from conftest import CLIENT, RG, SECRET, SUB, TENANT, wait_for


def paths_requested(emu, method, fragment):
    return [r for r in emu.requests_log() if r["method"] == method and fragment in r["path"]]


def test_cloud_register_discovers_the_endpoints(az, emu):
    cloud = az.json("cloud", "show", "--name", CLOUD)
    assert cloud["endpoints"]["resourceManager"] == emu.base
    # From GET /metadata/endpoints: the login endpoint and ARM's audience.
    assert cloud["endpoints"]["activeDirectory"] == emu.base + "/"
    assert cloud["endpoints"]["activeDirectoryResourceId"] == "https://management.core.windows.net/"
    assert cloud["isActive"] is True
    assert any(r["status"] == 200 for r in paths_requested(emu, "GET", "/metadata/endpoints"))


def test_login_lists_the_subscriptions(az, emu):
    account = az.json("account", "show")
    assert account["id"] == SUB
    assert account["name"] == "Emulator Subscription"
    assert account["tenantId"] == TENANT
    assert account["state"] == "Enabled"
    assert account["environmentName"] == CLOUD
    assert account["user"] == {"name": CLIENT, "type": "servicePrincipal"}
    assert any(r["status"] == 200 for r in paths_requested(emu, "GET", "/subscriptions"))


def test_login_without_instance_discovery_off_asks_login_microsoftonline_com(emu, tmp_path):
    # MSAL validates an unknown authority host at login.microsoftonline.com whatever the cloud
    # says; az's only switch is core.instance_discovery=false. Here it is left on.
    proxy = GuardProxy()
    try:
        cli = AzCli(emu, proxy, tmp_path)
        cli.register_cloud()
        proc = cli.login(TENANT, CLIENT, SECRET, check=False, AZURE_CORE_INSTANCE_DISCOVERY="true")
        assert proc.returncode != 0, proc.stdout
        assert set(proxy.hosts()) == {"login.microsoftonline.com:443"}, proxy.attempts
    finally:
        proxy.close()


def test_register_with_skip_endpoint_discovery(emu, guard_proxy, tmp_path):
    cli = AzCli(emu, guard_proxy, tmp_path)
    before = len(paths_requested(emu, "GET", "/metadata/endpoints"))
    cli.register_cloud(
        "--skip-endpoint-discovery",
        "--endpoint-active-directory",
        emu.base,
        "--endpoint-active-directory-resource-id",
        "https://management.core.windows.net/",
    )
    assert len(paths_requested(emu, "GET", "/metadata/endpoints")) == before
    cli.login(TENANT, CLIENT, SECRET)
    assert cli.json("account", "show")["id"] == SUB
    assert guard_proxy.attempts == []


def invoke(az, cluster, *args, **kw):
    return az.run("aks", "command", "invoke", "--resource-group", RG, "--name", cluster, *args, **kw)


def test_command_invoke_with_file_prints_exit_code_and_logs(az, tmp_path):
    (tmp_path / "hello.txt").write_text("hello from a file\n")
    proc = invoke(az, "aks1", "--command", "cat hello.txt; echo oops >&2; exit 3", "--file", "hello.txt", cwd=tmp_path)
    # az exits 0 whatever the command's exit code; it prints the code on the "started at" line,
    # which it prints only for provisioningState == "Succeeded" (compared case-sensitively).
    assert proc.returncode == 0
    assert re.search(r"command started at \S.*, finished at \S.* with exitcode=3", proc.stdout), proc.stdout
    assert "hello from a file\noops\n" in proc.stdout


@pytest.fixture
def slow_world(emu, world):
    clusters = world["subscriptions"][0]["resourceGroups"][0]["managedClusters"]
    clusters.append({"name": "aks-slow", "commandDuration": 3})
    clusters.append({"name": "aks-slower", "commandDuration": 8})
    clusters.append(
        {"name": "aks-broken", "runCommandFailure": {"reason": "CommandTimedOut", "message": "killed", "started": True}}
    )
    emu.put("/world", json.dumps(world))
    return world


def test_command_invoke_polls_through_in_progress_202s(az, emu, slow_world):
    # az's RunCommandLocationPolling reads the state from each poll's body: an empty 202 is a
    # BadResponse ("does not contain a body").
    polls = len(paths_requested(emu, "GET", "/managedClusters/aks-slow/commandResults/"))
    proc = invoke(az, "aks-slow", "--command", "echo slow")
    assert re.search(r"with exitcode=0\n", proc.stdout), proc.stdout + proc.stderr
    assert "slow\n" in proc.stdout
    answers = [r["status"] for r in paths_requested(emu, "GET", "/managedClusters/aks-slow/commandResults/")[polls:]]
    assert 202 in answers and answers[-1] == 200, answers


def test_command_invoke_no_wait_then_result(az, slow_world):
    proc = invoke(az, "aks-slower", "--command", "echo later", "--no-wait")
    # The in-progress helper prints startedAt and the state from the 202's body.
    m = re.search(r"command id: ([0-9a-f]{32}), started at: (\S+), status: Running", proc.stdout)
    assert m, proc.stdout
    command_id, started = m.groups()
    assert started != "None"

    def result():
        return az.run("aks", "command", "result", "--resource-group", RG, "--name", "aks-slower", "--command-id", command_id)

    first = result()
    assert f"command id: {command_id}, started at: {started}, status: Running" in first.stdout or (
        "exitcode=0" in first.stdout
    ), first.stdout
    def finished():
        proc = result()
        return proc if "exitcode=0" in proc.stdout else None

    done = wait_for(finished, timeout=60, what="az aks command result to print the exit code")
    assert "later\n" in done.stdout


def test_command_invoke_on_an_aad_cluster_sends_a_cluster_token(az):
    # az fetches a token for the AKS AAD server app itself and sends it as clusterToken.
    proc = invoke(az, "aks-aad", "--command", "echo aad")
    assert "with exitcode=0" in proc.stdout and "aad\n" in proc.stdout, proc.stdout


def test_a_failed_command_fails_invoke_and_shows_its_reason_in_result(az, slow_world):
    # Waiting for it, az (azure-core's poller) turns a Failed result into an error: exit 1.
    proc = invoke(az, "aks-broken", "--command", "true", check=False)
    assert proc.returncode == 1, proc.stdout
    assert "Operation returned an invalid status 'OK'" in proc.stderr, proc.stderr
    # Fetched by `az aks command result`, the Failed state gets its own line with the reason.
    proc = invoke(az, "aks-broken", "--command", "true", "--no-wait")
    m = re.search(r"command id: ([0-9a-f]{32}), started at: \S+, status: Failed", proc.stdout)
    assert m, proc.stdout
    proc = az.run("aks", "command", "result", "--resource-group", RG, "--name", "aks-broken", "--command-id", m[1])
    assert "command failed with reason: CommandTimedOut" in proc.stdout, proc.stdout


def test_get_credentials_user_and_admin_contexts(az, tmp_path):
    kubeconfig = str(tmp_path / "config")
    az.run("aks", "get-credentials", "--resource-group", RG, "--name", "aks1", "--file", kubeconfig)
    az.run("aks", "get-credentials", "--resource-group", RG, "--name", "aks1", "--admin", "--file", kubeconfig)
    with open(kubeconfig) as f:
        kc = yaml.safe_load(f)
    contexts = {c["name"]: c["context"]["user"] for c in kc["contexts"]}
    # az appends "-admin" to the admin kubeconfig's context (AKS names it after the cluster).
    assert contexts == {"aks1": "clusterUser_rg1_aks1", "aks1-admin": "clusterAdmin_rg1_aks1"}
    assert kc["current-context"] == "aks1-admin"
    assert {u["name"] for u in kc["users"]} == {"clusterUser_rg1_aks1", "clusterAdmin_rg1_aks1"}
    assert os.stat(kubeconfig).st_mode & 0o077 == 0


def test_container_exec_through_a_pseudo_terminal(az, emu):
    child = pexpect.spawn(
        az.binary,
        ["container", "exec", "--resource-group", RG, "--name", "cg1", "--exec-command", "/bin/sh"],
        env=az.env(),
        cwd=az.home,
        dimensions=(30, 100),
        timeout=60,
        encoding="utf-8",
    )
    try:
        child.expect(r"[$#] ")
        child.send("echo hi-$((40+2))\r")
        child.expect(r"hi-42\r\n")
        child.send("exit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    session = [s for s in emu.get("/exec-sessions") if s["containerGroup"] == "cg1"][-1]
    # az sizes the remote terminal from its own.
    assert (session["rows"], session["cols"]) == (30, 100)
