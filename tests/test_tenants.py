"""The tenants file: each tenant's settings checked by pydantic, a bad one said in a line."""

from __future__ import annotations

import json

import pytest

from service.tenants import Tenant, TenantStore

PASSWORD = "correct horse battery"


def test_a_tenant_added_is_read_back(tmp_path):
    store = TenantStore(tmp_path / "tenants.json")
    store.add("arkea", PASSWORD, [".tar.bz2", ".tbz"], 3, 1000, {"runner": "FlinkRunner"})
    tenant = store.load()["arkea"]
    assert tenant == Tenant("arkea", tenant.password_hash, (".tar.bz2", ".tbz"), 3, 1000,
                            "arkea", {"runner": "FlinkRunner"})
    assert store.authenticate("arkea", PASSWORD) == tenant


@pytest.mark.parametrize("settings, message", [
    ({"max_files": 0}, "tenant arkea: max_files should be greater than or equal to 1"),
    ({"max_bytes": -1}, "tenant arkea: max_bytes should be greater than or equal to 1"),
    ({"formats": [".tar.bz2", 7]}, "tenant arkea: formats should be a valid string"),
])
def test_bad_settings_are_refused_before_the_password_is_hashed(tmp_path, settings, message):
    store = TenantStore(tmp_path / "tenants.json")
    with pytest.raises(ValueError) as refused:
        store.add("arkea", "short", **settings)  # a short password would be refused too
    assert str(refused.value) == message
    assert store.load() == {}


@pytest.mark.parametrize("change, message", [
    ({"max_files": "3"}, "tenant arkea: max_files should be a valid integer"),
    ({"max_fils": 3}, "tenant arkea: max_fils: unexpected keyword argument"),
    ({"profile": {"runner": ["FlinkRunner"]}}, "tenant arkea: profile should be a valid string"),
])
def test_a_file_with_a_bad_setting_is_refused_whole(tmp_path, change, message):
    path = tmp_path / "tenants.json"
    TenantStore(path).add("arkea", PASSWORD)
    document = json.loads(path.read_text())
    document["tenants"]["arkea"].update(change)
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError) as refused:
        TenantStore(path).load()
    assert str(refused.value) == message
