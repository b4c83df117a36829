"""IPv4/IPv6 address and subnet calculations with the ipaddress module."""
from __future__ import annotations

import ipaddress

MAX_SUBNETS = 256
MAX_CONTAINS = 1000


def _network_of(text: str, strict: bool):
    text = " ".join(text.split())
    if " " in text:  # "192.168.1.10 255.255.255.0"
        text = text.replace(" ", "/", 1)
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError as exc:
        raise ValueError(f"not an IP address or network: {text!r}") from exc
    network = interface.network
    if strict and interface.ip != network.network_address:
        raise ValueError(f"{text} has host bits set (strict mode); the network is {network}")
    explicit_prefix = "/" in text
    return interface.ip, network, explicit_prefix


def _host_range(network):
    """First and last usable host, and how many usable hosts there are."""
    size = network.num_addresses
    if network.version == 4:
        if network.prefixlen >= 31:  # /31 point-to-point links (RFC 3021) and /32 single hosts
            return network[0], network[-1], size
        return network[1], network[-2], size - 2
    if network.prefixlen >= 127:
        return network[0], network[-1], size
    return network[1], network[-1], size - 1  # the network address is the subnet-router anycast


def _flags(address) -> dict:
    return {
        "is_private": address.is_private,
        "is_global": address.is_global,
        "is_loopback": address.is_loopback,
        "is_multicast": address.is_multicast,
        "is_link_local": address.is_link_local,
        "is_reserved": address.is_reserved,
        "is_unspecified": address.is_unspecified,
    }


def run(params: dict) -> dict:
    text = params.get("address")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("'address' must be a non-empty string such as '192.168.1.10/24'")
    address, network, explicit = _network_of(text.strip(), bool(params.get("strict", False)))
    first, last, usable = _host_range(network)

    result = {
        "version": network.version,
        "address": str(address),
        "compressed": address.compressed,
        "exploded": address.exploded,
        "network": str(network),
        "network_address": str(network.network_address),
        "broadcast_address": str(network.broadcast_address) if network.version == 4 else None,
        "netmask": str(network.netmask),
        "hostmask": str(network.hostmask),
        "prefix_length": network.prefixlen,
        "num_addresses": network.num_addresses,
        "usable_hosts": usable,
        "first_host": str(first),
        "last_host": str(last),
        "explicit_prefix": explicit,
        "reverse_pointer": address.reverse_pointer,
        "integer": int(address),
        "binary": (".".join(f"{octet:08b}" for octet in address.packed) if network.version == 4
                   else ":".join(f"{int(g, 16):016b}" for g in address.exploded.split(":"))),
        **_flags(address),
    }
    if network.version == 6 and address.ipv4_mapped is not None:
        result["ipv4_mapped"] = str(address.ipv4_mapped)

    new_prefix = params.get("subnet_prefix")
    if new_prefix is not None:
        if isinstance(new_prefix, bool) or not isinstance(new_prefix, int):
            raise ValueError("'subnet_prefix' must be an integer")
        if not network.prefixlen <= new_prefix <= network.max_prefixlen:
            raise ValueError(
                f"'subnet_prefix' must be between {network.prefixlen} and {network.max_prefixlen} for {network}"
            )
        total = 2 ** (new_prefix - network.prefixlen)
        subnets = []
        for subnet in network.subnets(new_prefix=new_prefix):
            if len(subnets) == MAX_SUBNETS:
                break
            subnets.append(str(subnet))
        result["subnets"] = {"count": total, "listed": subnets, "truncated": total > len(subnets)}

    contains = params.get("contains")
    if contains is not None:
        if not isinstance(contains, list) or len(contains) > MAX_CONTAINS:
            raise ValueError(f"'contains' must be a list of at most {MAX_CONTAINS} addresses or networks")
        checks = []
        for item in contains:
            try:
                other = ipaddress.ip_network(str(item).strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"'contains' item is not an IP address or network: {item!r}") from exc
            inside = other.version == network.version and other.subnet_of(network)
            checks.append({"item": str(item), "inside": inside})
        result["contains"] = checks
    return result
