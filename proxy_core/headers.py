"""Header sets and readers over ASGI-style header lists ([(b"name", b"value")], names lower-case)."""

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection",
    b"te", b"trailer", b"transfer-encoding", b"upgrade",
})
# Set by a proxy from what it saw; a client's own values are not to be trusted.
FORWARDING = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-port",
                        b"x-forwarded-proto", b"x-forwarded-prefix", b"x-real-ip"})

Headers = list[tuple[bytes, bytes]]


def header(headers: Headers, name: bytes) -> str:
    """The first value of a header, decoded (latin-1, as HTTP headers are), or ""."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def connection_tokens(headers: Headers) -> set[bytes]:
    """Headers named in Connection are hop-by-hop too."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return tokens


def bearer_token(headers: Headers) -> str:
    """The token of `Authorization: Bearer <token>`, or ""."""
    scheme, _, value = header(headers, b"authorization").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def presented_credential(headers: Headers) -> str:
    """The credential a caller of an HTTP endpoint presents: `x-api-key` (Anthropic's SDKs) or else
    `Authorization: Bearer` (OpenAI's SDKs, the bridge's uploads). The bridge's socket takes the Bearer
    token only (sessions/bridge_socket.py)."""
    return header(headers, b"x-api-key").strip() or bearer_token(headers)
