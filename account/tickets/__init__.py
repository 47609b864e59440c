"""Tickets, their comments and their timeline."""
