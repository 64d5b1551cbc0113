"""The identity check's addresses: an IP address as itself, a name as what it resolves to."""

from __future__ import annotations

from fleet.stages.boot import addresses_of


def test_an_ip_address_is_itself_in_canonical_form() -> None:
    assert addresses_of("127.0.0.1") == {"127.0.0.1"}
    assert addresses_of("0:0:0:0:0:0:0:1") == {"::1"}


def test_a_name_is_every_address_it_resolves_to() -> None:
    assert "127.0.0.1" in addresses_of("localhost")  # from /etc/hosts: no DNS query


def test_something_that_is_neither_matches_nothing() -> None:
    assert addresses_of("") == set()
