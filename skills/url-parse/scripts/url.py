"""Parse, resolve and normalise URLs: components, query parameters, IDNA hosts."""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qs, quote, unquote, urljoin, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21, "ssh": 22, "git": 9418}
MAX_URL_LENGTH = 16_384
_UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _normalise_escapes(text: str, safe: str) -> str:
    """Upper-case percent escapes, decode escaped unreserved characters, escape other unsafe characters."""
    def fix(match):
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return quote(_PCT.sub(fix, text), safe=safe + "%")


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4."""
    output: list[str] = []
    while path:
        if path.startswith("../"):
            path = path[3:]
        elif path.startswith("./"):
            path = path[2:]
        elif path.startswith("/./"):
            path = path[2:]
        elif path == "/.":
            path = "/"
        elif path.startswith("/../"):
            path = path[3:]
            if output:
                output.pop()
        elif path == "/..":
            path = "/"
            if output:
                output.pop()
        elif path in (".", ".."):
            path = ""
        else:
            start = 1 if path.startswith("/") else 0
            end = path.find("/", start)
            end = len(path) if end == -1 else end
            output.append(path[:end])
            path = path[end:]
    return "".join(output)


def _host_info(hostname: str | None):
    """Return (host_type, ascii host, unicode host)."""
    if not hostname:
        return None, None, None
    try:
        address = ipaddress.ip_address(hostname)
        return f"ipv{address.version}", address.compressed, address.compressed
    except ValueError:
        pass
    try:
        ascii_host = hostname.encode("idna").decode("ascii").lower()
        unicode_host = ascii_host.encode("ascii").decode("idna")
    except UnicodeError as exc:
        raise ValueError(f"invalid host name {hostname!r}: {exc}") from exc
    return "domain", ascii_host, unicode_host


def run(params: dict) -> dict:
    url = params.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ValueError("'url' must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"'url' is too long (at most {MAX_URL_LENGTH} characters)")
    url = url.strip()
    default_scheme = params.get("default_scheme")
    if default_scheme is not None:
        if not isinstance(default_scheme, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", default_scheme):
            raise ValueError("'default_scheme' must be a scheme name such as 'https'")
        if not _SCHEME.match(url) and not url.startswith("/"):
            url = f"{default_scheme}://{url}"

    base = params.get("base")
    resolved = None
    target = url
    if base is not None:
        if not isinstance(base, str) or not _SCHEME.match(base.strip()):
            raise ValueError("'base' must be an absolute URL with a scheme")
        resolved = target = urljoin(base.strip(), url)

    try:
        parts = urlsplit(target)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid URL {target!r}: {exc}") from exc

    host_type, host_ascii, host_unicode = _host_info(parts.hostname)
    scheme = parts.scheme.lower()
    try:
        query_params = parse_qs(parts.query, keep_blank_values=True, max_num_fields=1000)
    except ValueError as exc:
        raise ValueError(f"too many query parameters: {exc}") from exc

    # normalised form (RFC 3986 section 6.2.2 plus scheme-based normalisation)
    netloc = ""
    if parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
        netloc = _normalise_escapes(userinfo, "!$&'()*+,;=:") + "@" if userinfo else ""
        netloc += f"[{host_ascii}]" if host_type == "ipv6" else (host_ascii or "")
        if port is not None and DEFAULT_PORTS.get(scheme) != port:
            netloc += f":{port}"
    path = _normalise_escapes(parts.path, "/:@!$&'()*+,;=")
    if path.startswith("/"):
        path = remove_dot_segments(path)
    if parts.netloc and not path:
        path = "/"
    query = _normalise_escapes(parts.query, "/?:@!$&'()*+,;=")
    if params.get("sort_query") and query:
        query = "&".join(sorted(query.split("&"), key=lambda pair: pair.split("=", 1)[0]))
    fragment = "" if params.get("drop_fragment") else _normalise_escapes(parts.fragment, "/?:@!$&'()*+,;=")
    normalized = urlunsplit((scheme, netloc, path, query, fragment))

    segments = [unquote(s) for s in parts.path.split("/")]
    if parts.path.startswith("/"):
        segments = segments[1:]
    return {
        "input": params["url"],
        "resolved": resolved,
        "scheme": scheme or None,
        "username": parts.username,
        "password": parts.password,
        "host": host_unicode,
        "host_ascii": host_ascii,
        "host_type": host_type,
        "port": port,
        "effective_port": port if port is not None else DEFAULT_PORTS.get(scheme),
        "path": parts.path,
        "path_segments": segments if parts.path else [],
        "query": parts.query,
        "query_params": query_params,
        "fragment": parts.fragment,
        "is_absolute": bool(scheme),
        "normalized": normalized,
    }
