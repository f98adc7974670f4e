"""`make connect`: from a deployed (or local) stack to a live Page in one command.

    AWS_SAM_STACK_NAME=messenger-webhook AWS_REGION=eu-west-1 python -m tools.connect [--yes | --check]
    python -m tools.connect --local [--yes | --check]          # the running `make dev` stack and its sandbox

It reads the stack's outputs and secrets (as `make smoke` does), then each setting the stack needs from Meta and
Vonage, prints a plan (current vs wanted, per setting) and, once confirmed (or with `--yes`), applies it:

1. the Meta app's webhook subscription for Pages: callback URL `MetaWebhookUrl`, the secret's verify token,
   every field the webhook handles (`POST /{app-id}/subscriptions`, app access token; needs the app id:
   META_APP_ID or the Meta secret's optional `app_id`);
2. each Page of `page_tokens` subscribed to the app with the same fields (`POST /{page-id}/subscribed_apps`);
3. each Page's Messenger profile from config/messenger-profile.json (`POST`/`DELETE /me/messenger_profile`),
   checked against Meta's limits before any call;
4. the Vonage application's Messages webhooks: `VonageInboundUrl`, `VonageStatusUrl`, version v1
   (`PUT /v2/applications/{id}`, Basic `api_key:api_secret`; the API secret: VONAGE_API_SECRET or the Vonage
   secret's optional `api_secret`).

A second run changes nothing and says so. `--check` changes nothing and exits 1 on drift (a field unsubscribed,
a menu edited in the Page inbox). No secret value is ever printed. GRAPH_API_BASE, GRAPH_API_VERSION and
VONAGE_API_BASE point it elsewhere (the local mode defaults them to the sandbox).

Modules: `api` (retries and errors), `graph` and `vonage` (the
two APIs), `plan` (current vs wanted, and the writes), `cli` (discovery, output, confirmation); the profile
file and Meta's limits are `devkit.messenger_profile` (the local sandbox checks with it too).
"""
