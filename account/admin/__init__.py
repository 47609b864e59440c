"""Admin endpoints: rejected messages, the outbox, hosted accounts."""
