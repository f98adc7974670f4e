"""A small Lambda handler for the worker pool tests (tests/integration/test_workers.py)."""

import os
import time

CALLS = 0  # module state: one count per execution environment


def lambda_handler(event: dict, context: object) -> object:
    global CALLS
    CALLS += 1
    action = event.get("action")
    if action == "sleep":
        time.sleep(float(event["seconds"]))
    elif action == "raise":
        raise ValueError("boom")
    elif action == "exit":
        os._exit(3)
    elif action == "unserialisable":
        return {"value": {1, 2}}
    return {
        "pid": os.getpid(),
        "calls": CALLS,
        "function_name": context.function_name,  # type: ignore[attr-defined]
        "env_name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
        "marker": os.environ.get("FIXTURE_MARKER"),
    }
