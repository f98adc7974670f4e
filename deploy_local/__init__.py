"""`make deploy-local`: template.yaml deployed by `sam deploy` into an AWS emulator on loopback, then checked.

- emulator.py: ministack (pinned) and the shims that make it do what AWS does where it falls short; runs in
  ministack's own virtualenv and imports nothing from the project.
- run.py: the steps (emulator, sandbox providers, sam build, sam deploy, secrets, checks, smoke, e2e, update,
  redrive, sam delete), each timed; everything started is stopped on success, failure and Ctrl-C.
- checks.py: what the deployed stack must show (resources, outputs, replies, refusals, alarms, redrive).
"""
