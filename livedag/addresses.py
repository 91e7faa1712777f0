"""Which address workers on other nodes use to reach this machine (Parsl's
`parsl.addresses` names, for HighThroughputExecutor(address=...) in cluster configs).

Every function reads local facts only (host name, interfaces, the routing table): none
sends a packet.
"""

from __future__ import annotations

import ipaddress
import socket

import psutil


def address_by_hostname() -> str:
    """This machine's host name (fully qualified when the resolver knows it)."""
    return socket.getfqdn()


def address_by_query() -> str:
    """Parsl asks a web service for the public address; livedag sends nothing outside and
    gives the address of the default route's interface instead."""
    return address_by_route()


def address_by_interface(ifname: str) -> str:
    """The IPv4 address of a network interface, e.g. 'ib0' or 'eth0'."""
    for addr in psutil.net_if_addrs().get(ifname, []):
        if addr.family == socket.AF_INET:
            return str(addr.address)
    known = ", ".join(sorted(psutil.net_if_addrs()))
    raise ValueError(f"interface {ifname!r} has no IPv4 address (interfaces: {known})")


def address_by_route() -> str:
    """The IPv4 address of the interface that holds the default route (else the host name's
    address): the one other nodes most likely reach."""
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) > 1 and fields[1] == "00000000":
                    return address_by_interface(fields[0])
    except (OSError, StopIteration, ValueError):
        pass
    return socket.gethostbyname(socket.gethostname())


def get_all_addresses() -> set[str]:
    """Every IPv4 address of this machine's interfaces that is not loopback, plus the host
    name: the candidates a worker may try."""
    found = {address_by_hostname()}
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family == socket.AF_INET and not ipaddress.ip_address(addr.address).is_loopback:
                found.add(str(addr.address))
    return found


def get_any_address() -> str:
    """One address from get_all_addresses() (an interface address when there is one)."""
    addrs = sorted(get_all_addresses(), key=lambda a: (not a[0].isdigit(), a))
    return addrs[0]
