"""Streaming the answer to the client: an answer in flight with its accounting (`_answer`), the two SSE dialects
(`_openai`: OpenAI's chunks; `_ui`: the browser's typed events, with `structured/` for JSON answers), and the SSE
response that sends them (`_response`)."""

from triage.stream._answer import Answer, Releasable, StreamTally
from triage.stream._openai import DONE, openai_chunks
from triage.stream._response import RAW_SEND, EventStream
from triage.stream._ui import error_event, sse_event, ui_events

__all__ = [
    "DONE",
    "RAW_SEND",
    "Answer",
    "EventStream",
    "Releasable",
    "StreamTally",
    "error_event",
    "openai_chunks",
    "sse_event",
    "ui_events",
]
