"""The routing state: which channel holds what, who waits for it, which groups a channel is in, and the bytes on the
wire. Pure data and decisions with no I/O: nothing here knows pika, asyncio or threads, so it is tested alone.

`inbox.Inbox` is the state the I/O thread keeps for its process (it returns `Effects` for its caller to carry out),
`envelope` the body format, `dedup` message ids and the window of those received lately, `names` the bounded set
of names a process remembers.
"""
