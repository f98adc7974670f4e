"""`make sam-local`: the functions in SAM CLI's own emulator, on a private no-bridge dockerd (docs/local-stack.md)."""
