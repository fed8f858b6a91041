"""A stand-in for channels_redis, so that its published tests run against this layer
(`tests/support/conformance/run.py`).

Only what those tests import is here: `core.RedisChannelLayer` (and `ChannelFull`), `pubsub.RedisPubSubChannelLayer`
and `utils._close_redis`. Each layer is a `RabbitmqChannelLayer` on the broker at AMQP_URL, taking channels_redis's
options that mean something here (`capacity`, `channel_capacity`, `expiry`, `group_expiry`,
`symmetric_encryption_keys`); `prefix` names the groups exchange, so layers of one prefix share their groups, as
channels_redis's do. Every name is scoped to the test that runs (`scope.current`), so queues and groups that one
test leaves on the broker (normal channels' queues are durable) never meet the next.
"""
