"""Where threads meet: the few named hand-offs between callers (on any event loop, or none) and the I/O thread.

Callers send `requests` (one small value per thing asked, each able to fail its caller) to the I/O thread; answers
and messages come back through `handoffs` (`LoopReply`, `ThreadReply`, `Waiter`, one wake-up per loop per pass);
`shared_inbox` lets a receiver take a buffered message on its own thread. Nothing here touches pika or the I/O
thread's state: each module says which thread may touch what.
"""
