"""The webhook's side: a verified provider POST stored once, acknowledged fast; Meta's data-deletion callback.

- `routes.py`: what each route does (verify, parse, store), and the table of POST routes the handler dispatches;
- `request.py`: the HTTP request as the routes read it (raw body, form fields) and the error -> status mapping;
- `ingest.py`: storing a batch of events: statuses and handover effects first, then each event once;
- `deletion.py`: deleting a user's data and the status record behind its confirmation code.
"""
