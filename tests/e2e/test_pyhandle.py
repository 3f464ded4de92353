"""pyhandle's REST client, unchanged, against the real node."""

from __future__ import annotations

import pytest
from pyhandle.handleclient import PyHandleClient
from pyhandle.handleexceptions import (
    HandleAlreadyExistsException,
    HandleAuthenticationError,
    HandleNotFoundException,
)

from tests.helpers import ADMIN_SECRET, ADMIN_USER

pytestmark = pytest.mark.e2e


def client(node, password=ADMIN_SECRET):
    return PyHandleClient("rest").instantiate_with_username_and_password(node.url, ADMIN_USER, password)


def test_register_retrieve_modify_delete(node):
    c = client(node)
    handle = "88.123/PYH-0001"
    assert c.register_handle(handle, "https://example.com/a", overwrite=False) == handle
    with pytest.raises(HandleAlreadyExistsException):
        c.register_handle(handle, "https://example.com/b", overwrite=False)
    assert c.register_handle(handle, "https://example.com/b", overwrite=True) == handle

    record = c.retrieve_handle_record_json(handle)
    assert record["handle"] == handle
    types = {v["type"]: v for v in record["values"]}
    assert types["URL"]["data"] == {"format": "string", "value": "https://example.com/b"}
    assert types["HS_ADMIN"]["data"]["value"] == {
        "handle": "0.NA/88.123",
        "index": 200,
        "permissions": "011111110011",
    }
    assert c.get_value_from_handle(handle, "URL") == "https://example.com/b"

    c.modify_handle_value(handle, URL="https://example.com/c")
    assert c.get_value_from_handle(handle, "URL") == "https://example.com/c"
    c.add_handle_value(handle, CHECKSUM="abc123")
    assert c.retrieve_handle_record(handle)["CHECKSUM"] == "abc123"
    c.delete_handle_value(handle, "CHECKSUM")
    assert "CHECKSUM" not in c.retrieve_handle_record(handle)

    assert c.delete_handle(handle) == handle
    assert c.retrieve_handle_record_json(handle) is None
    with pytest.raises(HandleNotFoundException):
        c.delete_handle(handle)


def test_register_with_extra_types_and_retrieve_by_key(node):
    c = client(node)
    handle = "88.123/PYH-0002"
    c.register_handle(
        handle, "https://example.com/x", checksum="ff00", overwrite=False, EMAIL="ops@example.com"
    )
    record = c.retrieve_handle_record(handle)
    assert record["URL"] == "https://example.com/x"
    assert record["CHECKSUM"] == "ff00"
    assert record["EMAIL"] == "ops@example.com"
    assert c.get_value_from_handle(handle, "EMAIL") == "ops@example.com"


def test_wrong_password_is_an_authentication_error(node):
    c = client(node, password="not-the-secret")
    with pytest.raises(HandleAuthenticationError):
        c.register_handle("88.123/PYH-0003", "https://example.com/x", overwrite=False)
    assert client(node).retrieve_handle_record_json("88.123/PYH-0003") is None


def test_search_handle_through_reverse_lookup(node):
    c = client(node)
    c.register_handle("88.123/PYH-S1", "https://search.example.com/a", overwrite=False)
    c.register_handle("88.123/PYH-S2", "https://search.example.com/b", checksum="abc", overwrite=False)
    searcher = PyHandleClient("rest").instantiate_for_read_and_search(node.url, ADMIN_USER, ADMIN_SECRET)
    assert searcher.search_handle(URL="https://search.example.com/a") == ["88.123/PYH-S1"]
    assert sorted(searcher.search_handle(URL="https://search.example.com/*")) == [
        "88.123/PYH-S1",
        "88.123/PYH-S2",
    ]
    assert searcher.search_handle(URL="https://search.example.com/*", CHECKSUM="abc") == ["88.123/PYH-S2"]
    assert searcher.search_handle(URL="https://nowhere.example.com/") == []
