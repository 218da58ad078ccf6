"""azure-identity (MSAL underneath) against the emulator's Entra endpoints."""

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential

from conftest import ARM_SCOPE, AKS_SCOPE, CLIENT, RG, SECRET, SUB, TENANT


def cred(emu, tenant=TENANT, client=CLIENT, secret=SECRET):
    return ClientSecretCredential(
        tenant, client, secret, authority=emu.base, disable_instance_discovery=True, connection_verify=emu.ca
    )


@pytest.mark.parametrize(
    "scope",
    [ARM_SCOPE, "https://management.core.windows.net//.default", None, AKS_SCOPE],
)
def test_client_secret_gets_token(emu, scope):
    scope = scope or f"{emu.base}/.default"
    token = cred(emu).get_token(scope)
    assert token.token and token.expires_on > 0


def test_wrong_secret_is_client_authentication_error(emu):
    with pytest.raises(ClientAuthenticationError) as e:
        cred(emu, secret="wrong").get_token(ARM_SCOPE)
    assert "AADSTS7000215" in str(e.value)


def test_unknown_client_and_tenant(emu):
    with pytest.raises(ClientAuthenticationError) as e:
        cred(emu, client="99999999-9999-9999-9999-999999999999").get_token(ARM_SCOPE)
    assert "AADSTS700016" in str(e.value)
    with pytest.raises(ClientAuthenticationError) as e:
        cred(emu, tenant="00000000-0000-0000-0000-00000000dead").get_token(ARM_SCOPE)
    # Like with real Entra, MSAL fails already on the tenant's metadata (400 AADSTS90002).
    assert "Unable to get authority configuration" in str(e.value)
    log = [r for r in emu.requests_log() if "00000000dead" in r["path"]]
    assert log and log[-1]["status"] == 400 and log[-1]["operation"] == "entra.metadata"


def test_bad_scope(emu):
    with pytest.raises(ClientAuthenticationError) as e:
        cred(emu).get_token("https://graph.microsoft.com/.default")
    assert "AADSTS70011" in str(e.value)


def test_managed_identity_app_service(emu, monkeypatch):
    from azure.mgmt.containerservice import ContainerServiceClient

    monkeypatch.setenv("IDENTITY_ENDPOINT", emu.ready["identityEndpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", "emulator-identity-header")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca)
    mi = ManagedIdentityCredential(connection_verify=emu.ca)
    token = mi.get_token(ARM_SCOPE)
    assert token.token and token.expires_on > 0
    client = ContainerServiceClient(mi, SUB, base_url=emu.base, credential_scopes=[ARM_SCOPE], connection_verify=emu.ca)
    assert client.managed_clusters.get(RG, "aks1").name == "aks1"
