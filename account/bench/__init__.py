"""``tix bench``: the broker's own rate next to Tix's rate down a four-level chain, in one run.

``raw`` measures aio-pika alone on the same RabbitMQ; ``chain`` starts four ``tix node serve``
processes and drives tickets down and back up; ``figures`` reads the timings out of the node
databases and ``/proc``; ``report`` prints them. Nothing here is imported by a running node.
"""
