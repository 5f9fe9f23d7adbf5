"""Triage inside an existing FastAPI app: its endpoints under /triage, the host's routes untouched.

    pip install triage fastapi uvicorn
    python examples/embed_in_fastapi.py            # then: curl localhost:8080/hello
                                                    #       curl localhost:8080/triage/v1/models

Point an OpenAI client at http://localhost:8080/triage/v1 with model="auto".
"""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from triage import TriageMiddleware, load_config

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


# load_config() with no path is the shipped demo config; pass your triage.yaml in production.
app.add_middleware(TriageMiddleware, config=load_config(), prefix="/triage")

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=8080)
