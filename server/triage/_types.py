"""ASGI type aliases, defined once (as in starlette/types.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# One chat message as the OpenAI API takes it: {"role": ..., "content": str | list[part] | None, ...}.
ChatMessage = dict[str, Any]
