import pytest

from scripts.ipcalc import run


def test_ipv4_cidr():
    out = run({"address": "192.168.1.10/24"})
    assert out["version"] == 4
    assert out["address"] == "192.168.1.10"
    assert out["network"] == "192.168.1.0/24"
    assert out["network_address"] == "192.168.1.0"
    assert out["broadcast_address"] == "192.168.1.255"
    assert (out["netmask"], out["hostmask"], out["prefix_length"]) == ("255.255.255.0", "0.0.0.255", 24)
    assert (out["num_addresses"], out["usable_hosts"]) == (256, 254)
    assert (out["first_host"], out["last_host"]) == ("192.168.1.1", "192.168.1.254")
    assert out["reverse_pointer"] == "10.1.168.192.in-addr.arpa"
    assert out["integer"] == 3232235786
    assert out["binary"] == "11000000.10101000.00000001.00001010"
    assert out["is_private"] is True and out["is_global"] is False
    assert out["explicit_prefix"] is True
    assert "subnets" not in out and "contains" not in out and "ipv4_mapped" not in out


@pytest.mark.parametrize("text", ["10.0.0.1/255.255.255.252", "10.0.0.1 255.255.255.252", " 10.0.0.1/30 "])
def test_netmask_forms(text):
    out = run({"address": text})
    assert out["network"] == "10.0.0.0/30"
    assert (out["first_host"], out["last_host"], out["usable_hosts"]) == ("10.0.0.1", "10.0.0.2", 2)


@pytest.mark.parametrize(
    "text, first, last, usable",
    [
        ("10.0.0.0/31", "10.0.0.0", "10.0.0.1", 2),
        ("8.8.8.8", "8.8.8.8", "8.8.8.8", 1),
        ("2001:db8::/126", "2001:db8::1", "2001:db8::3", 3),
        ("2001:db8::/127", "2001:db8::", "2001:db8::1", 2),
        ("::1", "::1", "::1", 1),
    ],
)
def test_small_networks(text, first, last, usable):
    out = run({"address": text})
    assert (out["first_host"], out["last_host"], out["usable_hosts"]) == (first, last, usable)


def test_bare_address_is_host_route():
    out = run({"address": "8.8.8.8"})
    assert out["network"] == "8.8.8.8/32" and out["explicit_prefix"] is False
    assert out["is_global"] is True and out["is_private"] is False


def test_ipv6():
    out = run({"address": "2001:DB8::1/64"})
    assert out["version"] == 6
    assert out["compressed"] == "2001:db8::1"
    assert out["exploded"] == "2001:0db8:0000:0000:0000:0000:0000:0001"
    assert out["network"] == "2001:db8::/64"
    assert out["broadcast_address"] is None
    assert out["netmask"] == "ffff:ffff:ffff:ffff::"
    assert out["num_addresses"] == 2**64 and out["usable_hosts"] == 2**64 - 1
    assert out["last_host"] == "2001:db8::ffff:ffff:ffff:ffff"
    assert out["reverse_pointer"].endswith("8.b.d.0.1.0.0.2.ip6.arpa")
    assert out["binary"].startswith("0010000000000001:0000110110111000:")


def test_ipv4_mapped():
    out = run({"address": "::ffff:192.0.2.1"})
    assert out["ipv4_mapped"] == "192.0.2.1"


@pytest.mark.parametrize(
    "text, flag",
    [
        ("127.0.0.1", "is_loopback"),
        ("224.0.0.1", "is_multicast"),
        ("169.254.10.1", "is_link_local"),
        ("0.0.0.0", "is_unspecified"),
        ("240.0.0.1", "is_reserved"),
        ("fe80::1", "is_link_local"),
        ("ff02::1", "is_multicast"),
    ],
)
def test_flags(text, flag):
    assert run({"address": text})[flag] is True


def test_subnets():
    out = run({"address": "192.168.1.0/24", "subnet_prefix": 26})
    assert out["subnets"] == {
        "count": 4,
        "listed": ["192.168.1.0/26", "192.168.1.64/26", "192.168.1.128/26", "192.168.1.192/26"],
        "truncated": False,
    }
    big = run({"address": "10.0.0.0/8", "subnet_prefix": 24})
    assert big["subnets"]["count"] == 65536 and big["subnets"]["truncated"] is True
    assert len(big["subnets"]["listed"]) == 256 and big["subnets"]["listed"][-1] == "10.0.255.0/24"
    same = run({"address": "10.0.0.0/30", "subnet_prefix": 30})
    assert same["subnets"]["listed"] == ["10.0.0.0/30"]


def test_contains():
    out = run({"address": "192.168.1.10/24", "contains": ["192.168.1.200", "192.168.2.1", "192.168.1.0/25",
                                                             "192.168.0.0/16", "::1"]})
    assert [c["inside"] for c in out["contains"]] == [True, False, True, False, False]
    assert out["contains"][0]["item"] == "192.168.1.200"


def test_strict_mode():
    assert run({"address": "192.168.1.0/24", "strict": True})["network"] == "192.168.1.0/24"
    with pytest.raises(ValueError, match="host bits set.*192.168.1.0/24"):
        run({"address": "192.168.1.10/24", "strict": True})


@pytest.mark.parametrize(
    "params, message",
    [
        ({"address": ""}, "non-empty"),
        ({"address": None}, "non-empty"),
        ({"address": "300.1.1.1"}, "not an IP address"),
        ({"address": "10.0.0.0/33"}, "not an IP address"),
        ({"address": "example.com"}, "not an IP address"),
        ({"address": "10.0.0.0/24", "subnet_prefix": 23}, "between 24 and 32"),
        ({"address": "10.0.0.0/24", "subnet_prefix": 33}, "between 24 and 32"),
        ({"address": "10.0.0.0/24", "subnet_prefix": "26"}, "must be an integer"),
        ({"address": "10.0.0.0/24", "contains": "10.0.0.1"}, "'contains' must be a list"),
        ({"address": "10.0.0.0/24", "contains": ["nope"]}, "'contains' item"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
