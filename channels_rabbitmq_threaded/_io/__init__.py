"""The I/O thread: one background thread per layer running pika's `IOLoop`, the only code that touches pika.

`io_thread.IOThread` is the thread, its request dispatch and the routing state it owns; each of its two connections
is a `link.Link` (its life cycle as a table), driven by a side (`consumer.ConsumerSide`, `publisher.PublisherSide`)
with the helpers they share (`ledgers`, `inflight`, `process_queue`, `normal_groups`, `reach`); `figures` reads
their counters for `stats()`.
"""
