"""`TriageMiddleware`: Triage's endpoints under a path prefix inside a host ASGI app (Starlette, FastAPI, ...).

Pure ASGI (no BaseHTTPMiddleware, which buffers and breaks streaming): requests under the prefix go to Triage's
own app with the prefix moved into `root_path`; everything else, websockets included, passes through untouched.
Triage's provider clients start with the host's lifespan, or on first use if the host has none.
"""

from __future__ import annotations

from triage._config import TriageConfig
from triage._types import ASGIApp, Message, Receive, Scope, Send
from triage.app._app import create_app
from triage.app._gateway import Gateway
from triage.classify import Classifier

__all__ = ["TriageMiddleware"]


class TriageMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        config: TriageConfig | None = None,
        prefix: str = "/triage",
        classifier: Classifier | None = None,
    ) -> None:
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError("prefix must start with '/' and not end with one, e.g. '/triage'")
        self.app = app
        self.prefix = prefix
        self.triage = create_app(config, classifier=classifier, ui=False)
        self.gateway: Gateway = self.triage.state.gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        # Starlette >= 0.33 routes on the full path with root_path as a prefix of it (ASGI spec, root_path).
        local = path[len(root_path):] if root_path and path.startswith(root_path) else path
        if local == self.prefix or local.startswith(self.prefix + "/"):
            child = dict(scope)
            child["root_path"] = root_path + self.prefix
            await self.triage(child, receive, send)
            return
        await self.app(scope, receive, send)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        gateway = self.gateway

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await gateway.start()
            elif message["type"] == "lifespan.shutdown":
                await gateway.stop()
            return message

        return wrapped
