"""Domain package shared by the webhook and reply Lambdas (deployed as a layer).

One sub-package per function side, the kernels they share below them (imports only go down):

- `inbound/`: the webhook's side (routes, the HTTP request, ingest, data deletion);
- `reply/`: the reply function's side (stream records, turn, pipeline, ledger, responder, profiles);
- `providers/meta/`, `providers/vonage/`: parsing, signatures and sending, one provider each;
- `storage/`: the events table behind the `Store` port;
- kernels: `events` (normalised provider events), `messages` (the inbound message, outgoing messages),
  `sending` (the Sender port, send outcomes, retry policy), `policy` (the messaging window and tags),
  `handover` (bot pause and our sends' marker), `config`, `secrets`, `aws`, `parsing`, `errors`, `observability`.
"""
