"""livedag.addresses: Parsl's helpers for HighThroughputExecutor(address=...), from local
facts only."""

from __future__ import annotations

import ipaddress
import socket

import psutil
import pytest

from livedag import addresses


def test_interface_address_is_that_interfaces_ipv4() -> None:
    assert addresses.address_by_interface("lo") == "127.0.0.1"


def test_unknown_interface_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'no-such-if0'.*interfaces: .*lo"):
        addresses.address_by_interface("no-such-if0")


def test_all_addresses_are_this_machines_and_not_loopback() -> None:
    mine = {a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET}
    found = addresses.get_all_addresses()
    assert addresses.address_by_hostname() in found
    for a in found - {addresses.address_by_hostname()}:
        assert a in mine and not ipaddress.ip_address(a).is_loopback
    assert addresses.get_any_address() in found


def test_route_address_is_an_interface_address_or_the_hosts() -> None:
    mine = {a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET}
    assert addresses.address_by_route() in mine | {socket.gethostbyname(socket.gethostname())}
