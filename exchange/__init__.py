"""The federation fabric: canonical JSON, signing, transports, topology, outbox relay, hub."""
