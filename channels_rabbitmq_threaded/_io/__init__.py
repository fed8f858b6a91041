"""The I/O thread: one background thread per layer running pika's `IOLoop`, the only code that touches pika.

`io_thread.IOThread` is the thread and the one way into it from other threads; `hub.Hub` is its work: each request
to its handler, what the two sides report, the routing state it owns. Each of the two connections is a `link.Link`
(its life cycle as a table), driven by a side (`consumer.ConsumerSide`, with `group_bindings` and `deliveries`;
`publisher.PublisherSide`) and the helpers they share (`ledgers`, `inflight`, `logs`, `process_queue`,
`normal_groups`, `reach`); `figures` reads their counters for `stats()`.
"""
