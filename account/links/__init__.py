"""Partnership links between accounts: invitations, key pinning, contracts, suspension."""
