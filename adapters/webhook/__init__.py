"""The webhook adapter: companies with their own help desk join a chain over HTTP webhooks.

Each such company is a *participant* hosted by the adapter (its own account and key, linked to
its upstream by the ordinary invitation handshake). What reaches the participant's account
(offers, updates, comments, recalls, reworks, confirmations) is POSTed to the help desk's URL,
signed with HMAC-SHA256 over the timestamp and the body, from a durable queue with retries; the
help desk answers through ``POST /webhooks/{account}/inbound`` signed the same way (accept,
decline, status, comment, attachment). Field and status names are mapped per participant.

Pure modules: ``signing`` (signatures and their checks), ``mapping`` (per-participant mapping).
"""

from adapters.hosting.schema import AdapterSchema

# The adapter's own tables and their migrations (adapters/webhook/migrations).
SCHEMA = AdapterSchema(
    name="webhook", models="adapters.webhook.models", participant="WebhookParticipant"
)
