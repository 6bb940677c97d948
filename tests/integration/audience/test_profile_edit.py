"""A profile merge (PATCH /v1/users) is a read, then a write only if the
profile is unchanged since: a change in between makes it read and merge again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from shared.audience.users import create_user, patch_user
from shared.store.users import ConsentState, ProfileEdit, edit_profile, user_ref

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
PHONE = "+14155550123"


def test_a_change_between_read_and_write_is_kept_and_the_merge_redone(
    db: Any,
) -> None:
    create_user(db, PHONE, {"city": "Colombo"}, None, ConsentState.OPT_IN, NOW)
    reads = 0

    def merge(edit: ProfileEdit) -> Any:
        nonlocal reads
        reads += 1
        user = edit.read()
        if reads == 1:
            # Another writer (an inbound STOP) lands between read and write.
            user_ref(db, PHONE).update({"consent.state": "STOP", "attributes.x": 1})
        edit.update_profile({"tier": "gold"}, NOW)
        return user

    edit_profile(db, PHONE, merge)

    assert reads == 2
    stored = user_ref(db, PHONE).get().to_dict()
    assert stored["consent"]["state"] == "STOP"
    assert stored["attributes"] == {"city": "Colombo", "x": 1, "tier": "gold"}


def test_a_profile_that_keeps_changing_is_a_transient_error(db: Any) -> None:
    create_user(db, PHONE, {}, None, ConsentState.OPT_IN, NOW)
    changes = iter(range(100))

    def merge(edit: ProfileEdit) -> None:
        edit.read()
        user_ref(db, PHONE).update({"attributes.n": next(changes)})
        edit.update_profile({"tier": "gold"}, NOW)

    with pytest.raises(gexc.Aborted):
        edit_profile(db, PHONE, merge)
    assert "tier" not in user_ref(db, PHONE).get().to_dict()["attributes"]


def test_patch_merges_and_answers_the_merged_profile(db: Any) -> None:
    create_user(
        db, PHONE, {"city": "Colombo", "old": 1}, None, ConsentState.OPT_IN, NOW
    )
    user = patch_user(db, PHONE, {"tier": "gold", "old": None}, NOW, timezone="UTC")
    assert user.attributes == {"city": "Colombo", "tier": "gold"}
    assert user.timezone == "UTC"
    assert user_ref(db, PHONE).get().to_dict()["attributes"] == user.attributes
