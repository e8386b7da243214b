"""Optional bearer-token authentication for the query service (``api.token``).

Probes stay open (a load balancer or kubelet has no token) and so does the dashboard's
page itself, which holds no data: its script asks for the token and sends it with every
``/stats`` call. Everything else answers 401 without the right token. The comparison is
constant-time, so response timing does not leak the token.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/dashboard"})
UNAUTHORIZED = b'{"detail":"a valid bearer token is required"}'


class BearerTokenMiddleware:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="rtindex"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": UNAUTHORIZED})

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self.expected)
        return False
