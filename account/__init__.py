"""The account node: FastAPI app, SQLModel tables, domain services, the outbox/inbox seam."""
