"""The seam between domain tables and the transport: outbox, inbox and rejected messages."""
