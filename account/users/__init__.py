"""Users, roles, passwords, access tokens and API keys."""
