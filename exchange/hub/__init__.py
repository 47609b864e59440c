"""The exchange hub (``tix exchange serve``): directory, invitation delivery, dead letters, audit.

It sits in the ``exchange`` layer and imports neither ``account`` nor ``adapters``; nodes talk
to it over HTTP with requests signed by their own keys (``exchange.hub.requests``). See
docs/operator-guide.md and docs/scaling.md.
"""
