import pytest

from scripts.url import remove_dot_segments, run

RFC_BASE = "http://a/b/c/d;p?q"


def test_components():
    out = run({"url": "https://user:p%40ss@Example.COM:8443/a%20b/c/?x=1&x=2&y=&z=a+b#top"})
    assert out["scheme"] == "https"
    assert (out["username"], out["password"]) == ("user", "p%40ss")
    assert (out["host"], out["host_ascii"], out["host_type"]) == ("example.com", "example.com", "domain")
    assert out["port"] == 8443 and out["effective_port"] == 8443
    assert out["path"] == "/a%20b/c/"
    assert out["path_segments"] == ["a b", "c", ""]
    assert out["query"] == "x=1&x=2&y=&z=a+b"
    assert out["query_params"] == {"x": ["1", "2"], "y": [""], "z": ["a b"]}
    assert out["fragment"] == "top"
    assert out["is_absolute"] is True and out["resolved"] is None
    assert out["normalized"] == "https://user:p%40ss@example.com:8443/a%20b/c/?x=1&x=2&y=&z=a+b#top"


def test_idna_host_both_directions():
    out = run({"url": "http://Bücher.Example/"})
    assert out["host"] == "bücher.example"
    assert out["host_ascii"] == "xn--bcher-kva.example"
    assert out["normalized"] == "http://xn--bcher-kva.example/"
    back = run({"url": "http://xn--mnchen-3ya.de"})
    assert back["host"] == "münchen.de" and back["host_ascii"] == "xn--mnchen-3ya.de"


def test_normalisation():
    out = run({"url": "HTTP://Example.com:80/a/./b/../c/%7euser/%2f/%e2%82%ac?q=%3d#F%7e"})
    assert out["normalized"] == "http://example.com/a/c/~user/%2F/%E2%82%AC?q=%3D#F~"
    assert run({"url": "https://example.com"})["normalized"] == "https://example.com/"
    assert run({"url": "https://example.com:443/x"})["normalized"] == "https://example.com/x"
    assert run({"url": "https://example.com:80/x"})["normalized"] == "https://example.com:80/x"
    assert run({"url": "https://example.com/ä ö?a=b c"})["normalized"] == "https://example.com/%C3%A4%20%C3%B6?a=b%20c"


def test_sort_query_and_drop_fragment():
    out = run({"url": "http://h/p?b=2&a=1&a=0#frag", "sort_query": True, "drop_fragment": True})
    assert out["normalized"] == "http://h/p?a=1&a=0&b=2"
    assert out["fragment"] == "frag"


def test_ip_hosts():
    v6 = run({"url": "http://[2001:DB8:0:0::1]:8080/"})
    assert v6["host_type"] == "ipv6" and v6["host"] == "2001:db8::1"
    assert v6["normalized"] == "http://[2001:db8::1]:8080/"
    v4 = run({"url": "ftp://192.168.0.1/file"})
    assert v4["host_type"] == "ipv4" and v4["effective_port"] == 21


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("g:h", "g:h"),
        ("g", "http://a/b/c/g"),
        ("./g", "http://a/b/c/g"),
        ("g/", "http://a/b/c/g/"),
        ("/g", "http://a/g"),
        ("//g", "http://g"),
        ("?y", "http://a/b/c/d;p?y"),
        ("g?y", "http://a/b/c/g?y"),
        ("#s", "http://a/b/c/d;p?q#s"),
        ("g;x?y#s", "http://a/b/c/g;x?y#s"),
        ("", "http://a/b/c/d;p?q"),
        (".", "http://a/b/c/"),
        ("..", "http://a/b/"),
        ("../g", "http://a/b/g"),
        ("../..", "http://a/"),
        ("../../g", "http://a/g"),
        ("../../../g", "http://a/g"),
        ("/./g", "http://a/g"),
        ("g.", "http://a/b/c/g."),
        ("./../g", "http://a/b/g"),
    ],
)
def test_rfc3986_resolution_examples(ref, expected):
    # an empty url is rejected as input, so "?q" (same document, same query) stands in for ""
    out = run({"url": ref or "?q", "base": RFC_BASE})
    assert out["resolved"] == expected


def test_default_scheme():
    out = run({"url": "example.com/path?a=1", "default_scheme": "https"})
    assert out["host"] == "example.com" and out["path"] == "/path" and out["scheme"] == "https"
    relative = run({"url": "example.com/path"})
    assert relative["host"] is None and relative["path"] == "example.com/path" and relative["is_absolute"] is False
    kept = run({"url": "http://x.org", "default_scheme": "https"})
    assert kept["scheme"] == "http"


def test_non_hierarchical_and_relative_urls():
    mail = run({"url": "mailto:Ada@Example.com?subject=Hi"})
    assert mail["scheme"] == "mailto" and mail["host"] is None and mail["effective_port"] is None
    assert mail["path"] == "Ada@Example.com" and mail["query_params"] == {"subject": ["Hi"]}
    rel = run({"url": "/a/../b?x=1"})
    assert rel["scheme"] is None and rel["normalized"] == "/b?x=1"
    assert run({"url": "../up"})["normalized"] == "../up"
    assert run({"url": "?only=query"})["path_segments"] == []


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/a/b/c/./../../g", "/a/g"),
        ("mid/content=5/../6", "mid/6"),
        ("/a/..", "/"),
        ("/.", "/"),
        ("../x", "x"),
        ("./x", "x"),
        (".", ""),
        ("..", ""),
        ("/..", "/"),
        ("/../a", "/a"),
    ],
)
def test_remove_dot_segments(path, expected):
    assert remove_dot_segments(path) == expected


@pytest.mark.parametrize(
    "params, message",
    [
        ({"url": ""}, "non-empty"),
        ({"url": 3}, "non-empty"),
        ({"url": "http://x/" + "a" * 17000}, "too long"),
        ({"url": "http://h:99999/"}, "invalid URL"),
        ({"url": "http://h:port/"}, "invalid URL"),
        ({"url": "http://[::1/"}, "invalid URL"),
        ({"url": "g", "base": "/relative/base"}, "absolute URL"),
        ({"url": "g", "base": 7}, "absolute URL"),
        ({"url": "x", "default_scheme": "1bad"}, "scheme name"),
        ({"url": "http://" + "a" * 64 + ".com/"}, "invalid host name"),
        ({"url": "http://h/?" + "&".join(["a=1"] * 1001)}, "too many query parameters"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
