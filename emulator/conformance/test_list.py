"""Listings through the official SDKs: ItemPaged follows every nextLink the emulator hands out
(azure-mgmt-containerservice `managed_clusters.list` / `list_by_resource_group`,
azure-mgmt-containerinstance `container_groups.list`) and sees every resource with its tags."""

import json

import pytest
from azure.core.exceptions import HttpResponseError

from conftest import RG


def add_fleet(emu, world, paging=None):
    """rg1 gets 180 generated clusters and 130 container groups; a new group 70 more clusters."""
    groups = world["subscriptions"][0]["resourceGroups"]
    rg1 = next(g for g in groups if g["name"] == RG)
    rg1["managedClusterSets"] = [
        {"count": 180, "namePattern": "fleet-{i:03}", "tags": {"env": "prod", "ring": "1"}}
    ]
    rg1["containerGroupSets"] = [
        {"count": 130, "namePattern": "job-{i}", "tags": {"team": "batch"}, "containers": [{"name": "app"}]}
    ]
    groups.append(
        {
            "name": "rg-fleet",
            "location": "northeurope",
            "managedClusterSets": [{"count": 70, "namePattern": "edge-{i:02}", "tags": {"env": "dev"}}],
        }
    )
    if paging:
        world["listPaging"] = paging
    emu.put("/world", json.dumps(world))


def list_requests(emu, op):
    return [e for e in emu.requests_log() if e["operation"] == op]


def test_managed_clusters_list_follows_every_page(aks, emu, world):
    add_fleet(emu, world)
    before = len(list_requests(emu, "aks.list"))
    clusters = {c.name: c for c in aks.managed_clusters.list()}
    assert len(clusters) == 180 + 70 + 3  # with the world's aks1, aks-aad, aks-norun
    assert clusters["fleet-007"].tags == {"env": "prod", "ring": "1"}
    assert clusters["edge-70"].tags == {"env": "dev"}
    assert clusters["edge-70"].location == "northeurope"
    assert clusters["aks1"].tags is None
    pages = list_requests(emu, "aks.list")[before:]
    assert len(pages) == 3, "253 clusters at 100 a page"
    assert all(p["status"] == 200 for p in pages)


def test_managed_clusters_list_by_resource_group(aks, emu, world):
    add_fleet(emu, world)
    edge = list(aks.managed_clusters.list_by_resource_group("rg-fleet"))
    assert sorted(c.name for c in edge) == [f"edge-{i:02}" for i in range(1, 71)]
    assert all(c.tags == {"env": "dev"} for c in edge)
    with pytest.raises(HttpResponseError) as e:
        list(aks.managed_clusters.list_by_resource_group("rg-missing"))
    assert e.value.status_code == 404
    assert e.value.error.code == "ResourceGroupNotFound"


def test_empty_pages_with_a_next_link_do_not_end_the_listing(aks, emu, world):
    add_fleet(emu, world, paging={"pageSize": 9, "emptyFirstPage": True})
    before = len(list_requests(emu, "aks.list"))
    edge = list(aks.managed_clusters.list_by_resource_group("rg-fleet"))
    assert len(edge) == 70
    assert len(list_requests(emu, "aks.list")[before:]) == 1 + 8


def test_container_groups_list_follows_every_page(aci, emu, world):
    add_fleet(emu, world)
    before = len(list_requests(emu, "aci.list"))
    groups = {g.name: g for g in aci.container_groups.list()}
    assert len(groups) == 130 + 1  # with the world's cg1
    assert groups["job-130"].tags == {"team": "batch"}
    assert groups["job-1"].containers[0].name == "app"
    assert len(list_requests(emu, "aci.list")[before:]) == 2


def test_a_denied_listing_raises_authorization_failed(aks, emu, world):
    add_fleet(emu, world)
    emu.put("/faults", json.dumps({"aks.list": {"error403Rate": 1.0}}))
    try:
        with pytest.raises(HttpResponseError) as e:
            list(aks.managed_clusters.list())
        assert e.value.status_code == 403
        assert e.value.error.code == "AuthorizationFailed"
    finally:
        emu.put("/faults", "{}")


def test_az_aks_list_and_container_list_read_every_page(az, emu, world):
    # The Azure CLI pins its own SDK versions (venv-az): it must page the same way.
    add_fleet(emu, world)
    clusters = az.json("aks", "list", "-o", "json")
    assert len(clusters) == 180 + 70 + 3
    assert {c["name"]: c["tags"] for c in clusters}["edge-07"] == {"env": "dev"}
    in_group = az.json("aks", "list", "-g", "rg-fleet", "-o", "json")
    assert len(in_group) == 70
    groups = az.json("container", "list", "-o", "json")
    assert len(groups) == 130 + 1
