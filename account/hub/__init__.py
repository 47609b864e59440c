"""The node's side of the exchange hub: register, search the directory, invitations via the hub."""
