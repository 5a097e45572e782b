"""schemathesis hooks for tests/openapi_conformance.rs.

- SDP and trickle-ICE bodies are sent as the generated text (schemathesis has no serializer
  for these media types and would skip every WHIP/WHEP operation without one).
- Every other positive case names things that exist on the hub under test (the live room,
  its publisher and viewer sessions, stored alert documents), read from the JSON file named
  by HUBCAST_ST_LIVE, so the 2xx paths and their documented bodies are exercised too, not
  only the 4xx of random names. The alternation is a counter, so a fixed --seed with one
  worker sends the same requests every run.
"""

import itertools
import json
import os

import schemathesis
from schemathesis.generation.modes import GenerationMode


@schemathesis.serializer("application/sdp", "application/trickle-ice-sdpfrag")
def sdp_text(ctx, value):
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


with open(os.environ["HUBCAST_ST_LIVE"], encoding="utf-8") as f:
    LIVE = json.load(f)

TURN = itertools.count()


def positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def map_case(ctx, case):
    params = case.path_parameters
    if not params or not positive(case) or next(TURN) % 2:
        return case
    path = case.operation.path
    turn = next(TURN)
    if "room" in params:
        params["room"] = LIVE["room"]
    if "publisher" in params:
        params["publisher"] = LIVE["publisher"]
    if "id" in params:
        params["id"] = LIVE["publisher"] if path.startswith("/whip/") else LIVE["viewer"]
    if "file" in params:
        params["file"] = LIVE["files"][turn % len(LIVE["files"])]
    return case
