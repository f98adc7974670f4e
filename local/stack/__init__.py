"""The local stack (`make dev`), split by job; imports go down this list:

- `settings`: names (table, secrets), ports and options the stack runs with, and the address it listens on.
- `record`: `.local/stack-<PORT>.json`, the running stack's record: its URLs and every process it started.
- `recovery`: on start, end what a killed stack on the same ports left running (only what it recorded), and
  name the owner of a port held by anything else; `stop_running` stops a stack started in the background.
- `environment`: both functions' template environment, resolved to the local services.
- `reply_side`: the stream poller and the reply function's pool: start, stop, restart, state, on-failure queue.
- `control_routes`: the `/_local/...` control API (health, poller, failures).
- `lifecycle`: `LocalStack`, which starts every part in order (servers, functions, services, poller), and stops
  them.
"""
