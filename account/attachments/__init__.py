"""Ticket attachments: SHA-256-addressed content, inline or fetched by digest across links."""
