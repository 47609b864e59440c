"""Hosted accounts: what every adapter (e-mail, webhooks) shares.

An adapter is an ordinary node process (``NodeContext`` and ``NodeRuntime``) that also hosts one
account per *participant*, a company without a node of its own: each has its own Ed25519 key
(``<data dir>/hosted/<account>.key``, 0600), is linked to its upstream by the ordinary
invitation handshake, and is consumed by the same runtime. An adapter adds only its channel
(mail, HTTP webhooks) on top.

Modules: ``participants`` (the participant row's common columns, account ids, key files,
redeeming an invitation), ``service`` (``HostedAdapter``: hosting, the background tasks and
their lifecycle), ``server`` (building and serving the process), ``views`` (admin helpers),
``schema`` and ``migrate`` (each adapter's own Alembic chain), ``keys`` (rotating a hosted
account's key), ``cli`` (``tix adapter <name> db …|keys …``).
"""
