"""Participants without a node of their own (e-mail, webhooks), built on the account services."""
