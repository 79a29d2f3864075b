"""The count of each tenant's uploads in progress on a replica (``service.collect.slots``)."""

from __future__ import annotations

from service.collect.slots import UploadSlots


def test_a_tenant_has_its_own_slots_and_gets_them_back():
    slots = UploadSlots(per_tenant=2)
    assert [slots.take("arkea") for _ in range(3)] == [True, True, False]
    assert slots.take("other")  # another tenant's count is its own
    slots.give_back("arkea")
    assert slots.take("arkea") and not slots.take("arkea")


def test_a_tenant_whose_uploads_ended_starts_again_from_none():
    slots = UploadSlots(per_tenant=1)
    for _ in range(3):
        assert slots.take("arkea") and not slots.take("arkea")
        slots.give_back("arkea")
