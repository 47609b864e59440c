"""TMF621 Trouble Ticket API facade (v5) over the node's tickets, with a durable event hub."""
