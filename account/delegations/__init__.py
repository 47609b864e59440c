"""Delegations: a ticket offered to a linked partner, and everything that follows from it."""
