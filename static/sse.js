// Server-sent events over fetch(): the UI stream is a POST, so EventSource cannot read it.
//
// SSEParser follows the WHATWG "event stream interpretation" rules: lines end in CRLF, LF or CR (a CR at the end
// of one chunk and an LF at the start of the next are one line end); a line starting with ":" is a comment (the
// server's keep-alive pings); "field: value" drops one space after the colon; several `data:` lines join with "\n";
// a blank line dispatches the event, unless it has no data; an unterminated event at the end of the stream is
// dropped. Text is decoded with a streaming TextDecoder, so a UTF-8 character cut between chunks survives.

export class SSEParser {
  constructor() {
    this._buffer = "";
    this._pendingCR = false;
    this._first = true;
    this._reset();
    this.lastEventId = "";
    this.retry = null;
  }

  _reset() {
    this._type = "";
    this._data = [];
    this._hasData = false;
  }

  /** Feed decoded text; returns the events completed by it: [{event, data, id}]. */
  feed(text) {
    if (!text) return []; // an empty chunk must not clear a pending CR
    if (this._first) {
      this._first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a byte order mark, once at the start
    }
    if (this._pendingCR) {
      this._pendingCR = false;
      if (text[0] === "\n") text = text.slice(1); // the LF of a CRLF cut by the chunk boundary
    }
    const events = [];
    let buffer = this._buffer + text;
    let start = 0;
    for (;;) {
      let end = -1;
      for (let i = start; i < buffer.length; i++) {
        const c = buffer.charCodeAt(i);
        if (c === 10 || c === 13) {
          end = i;
          break;
        }
      }
      if (end < 0) break;
      const line = buffer.slice(start, end);
      if (buffer.charCodeAt(end) === 13) {
        if (end + 1 < buffer.length) {
          start = buffer.charCodeAt(end + 1) === 10 ? end + 2 : end + 1;
        } else {
          this._pendingCR = true;
          start = end + 1;
        }
      } else {
        start = end + 1;
      }
      const event = this._line(line);
      if (event) events.push(event);
    }
    this._buffer = buffer.slice(start);
    return events;
  }

  /** The stream ended: an event without its blank line is incomplete and dropped (as EventSource does). */
  end() {
    this._buffer = "";
    this._reset();
    return [];
  }

  _line(line) {
    if (line === "") {
      if (!this._hasData) {
        this._reset();
        return null;
      }
      const event = { event: this._type || "message", data: this._data.join("\n"), id: this.lastEventId };
      this._reset();
      return event;
    }
    if (line[0] === ":") return null; // a comment: keep-alive ping
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
    }
    if (field === "event") this._type = value;
    else if (field === "data") {
      this._data.push(value);
      this._hasData = true;
    } else if (field === "id") {
      if (!value.includes("\0")) this.lastEventId = value;
    } else if (field === "retry") {
      if (/^\d+$/.test(value)) this.retry = Number(value);
    }
    return null;
  }
}

/** Yield the events of a fetch() Response body as they arrive. Returns normally when the body ends. */
export async function* readSSE(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8");
  const parser = new SSEParser();
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        finished = true;
        break;
      }
      const batch = parser.feed(decoder.decode(value, { stream: true }));
      if (batch.length) yield batch;
    }
    const tail = parser.feed(decoder.decode());
    if (tail.length) yield tail;
    parser.end();
  } finally {
    // The consumer stopped early (or the read failed): cancel the body so the connection is closed.
    if (!finished) reader.cancel().catch(() => {});
    else reader.releaseLock();
  }
}
