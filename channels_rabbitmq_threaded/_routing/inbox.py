"""The process's routing state, with no I/O: channel buffers, waiting receivers, group membership, capacity, expiry.

Theory of operation
-------------------
RabbitMQ delivers each message once to this process's queue. From there, `Inbox` decides everything that
happens to it inside the process, and says what must be done about it in an `Effects` value that the caller (the
I/O thread) carries out:

* a delivery addressed to a channel, or to a group (fanned out to the group's local members), goes straight to a
  waiting receiver if there is one (a `Handoff`), else into that channel's `ChannelBuffer`;
* a delivery is acknowledged (its token listed in `Effects.acks`) as soon as it is routed: from then on it lives in
  memory only (at-most-once);
* a channel is *being read* while a receiver waits on it, and for `READING_WINDOW` seconds after a receiver last
  took a message from it; a channel that is not (a websocket that died without `group_discard`) is *idle*;
* `capacity` (the `local_capacity` option) bounds the deliveries held in memory for the whole process, counting a
  group delivery once however many local members hold it. When the process is at capacity:
    - if some receiver is waiting anywhere in the process and some idle channel holds messages, the oldest message
      of the idle channel with the largest backlog is dropped to make room (`Drop(reason="capacity")`), so that a
      channel nobody reads never stalls the others;
    - else the delivery is *held*: neither routed nor acknowledged. RabbitMQ stops sending once `prefetch_count`
      deliveries are unacknowledged, the backlog grows on the broker up to its length limit, and senders get
      `ChannelFull`. Held deliveries are routed and acknowledged, in order, as soon as room is made, or a channel
      turns idle (`next_expiry` says when to look again);
* an idle channel holds at most `channel_capacity(channel)` messages (the `capacity`/`channel_capacity` options): a
  delivery that finds it full is the one dropped, never one already there (`Drop(reason="channel capacity")` for a
  group message's copy, as the Channels spec says; `Drop(reason="direct over capacity")` for a direct send, which
  RabbitMQ confirmed to its sender before this process could know the channel was full). A channel being read
  takes what comes, within `capacity`: a burst (the backlog of a reconnect) waits for its reader, not dropped;
* a message that waits longer than `expiry` (the `local_expiry` option) is dropped (`Drop(reason="expired")`), and
  its channel is removed from all its groups (the Channels spec's persistence rule): a group left with no local
  member is listed in `Effects.unbind`;
* a membership ends `group_expiry` seconds after its last `add` (the spec's `group_expiry`), with the same unbind;
* a receiver whose message could not be given to it (its loop closed, or it was cancelled) puts it back at the
  head of its channel with `put_back`;
* `take_ready` and `wait_ready` are the receive() cases that need nothing but the channel's own buffer (its head
  is there and fresh, or nothing is there, and no delivery is held): they change no other state and have no
  `Effects`, so a receiver's own thread may run them (`shared_inbox.SharedInbox` says how). Any other case goes
  through `take`.

Bounds: nothing here grows with the channels, groups or messages that have come and gone.

* `_buffers`, a `ChannelBuffer` per channel: only while the channel holds a message or a waiting receiver. Every
  path that empties one forgets it (taken, handed over, expired, shed, given up, flushed).
* `_reads`, a `RecentReads` entry per channel read whose buffer went: at most 2 x `READING_WINDOW` seconds (the
  next `keep`, or the `expire` that `next_expiry` asks for, forgets the stale ones), so at most the channels read
  within that time.
* `_held`: from `offer` until room is made or the connection goes (`discard_held`); at most `prefetch_count`.
* `_expiries`, an `ExpiryHeap` entry per buffered delivery: until it expires, stale once taken or shed; at most
  2 x `in_memory` + `EXPIRY_HEAP_SLACK` (past that it drops its stale entries in one pass).
* `GroupMembership`'s tables: a membership from `group_add` to `group_discard`, its channel's expiry, `group_expiry`
  or `flush`; its age heap: at most 2 x groups + `AGE_HEAP_SLACK`.

`bookkeeping()` gives each size (shown by `layer.stats()`).

Rules: nothing here knows pika, asyncio or threads. Waiters and delivery tokens are opaque values chosen by the
caller. Time is passed in (`now`, in seconds of any monotonic clock). An `Inbox` is not thread-safe: its owner
calls it from one thread, or holds one lock around every call (`shared_inbox.SharedInbox`, in this package).
"""

from __future__ import annotations

import enum
import heapq
import itertools
import math
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .envelope import Recipient

W = TypeVar("W")  # a waiter: whatever hands one message to one receive() call
T = TypeVar("T")  # a token: whatever acknowledges one delivery at the broker

Message = dict[str, Any]

# A heap compacts itself (drops its stale entries, in one pass) when it holds more than twice its live entries plus
# this many: the work is paid for by the stale entries that made it due, so each costs O(1) over time.
EXPIRY_HEAP_SLACK = 64
AGE_HEAP_SLACK = 64

READING_WINDOW = 5.0  # seconds a channel counts as being read after a receiver last took a message from it


class DropReason(str, enum.Enum):
    """Why a message was dropped: its short name (the `reason` of its log record; equal to the plain string), and
    the text the log lines give. The first five are decided here; the others by the I/O side."""

    text: str

    def __new__(cls, key: str, text: str) -> DropReason:
        member = str.__new__(cls, key)
        member._value_ = key
        member.text = text
        return member

    CAPACITY = "capacity", "local_capacity reached while receivers wait: the oldest of the biggest unread backlog went"
    CHANNEL_CAPACITY = "channel capacity", "a group copy found its channel at capacity (capacity/channel_capacity)"
    DIRECT_OVER_CAPACITY = "direct over capacity", "a confirmed direct send found its channel at capacity: it went"
    EXPIRED = "expired", "waited longer than local_expiry; its channel was removed from its groups"
    NO_LOCAL_MEMBER = "no local member", "a group message reached this process after its last local member left"
    UNROUTABLE = "unroutable", "RabbitMQ had no queue for a direct send: its process is gone, or moving to another node"
    GROUP_COPY_REFUSED = "group copy refused", "a group member's queue was full (remote_capacity): its copy was dropped"
    NACKED = "nacked", "RabbitMQ refused a message sent without waiting: the receiving queue was full"
    FAILED = "failed", "a message sent without waiting was not confirmed"
    NOT_OURS = "not ours", "a body on this process's queue that this layer did not write (or cannot decrypt)"
    WRONG_QUEUE = "wrong queue", "a message for another channel was in a normal channel's queue"


@dataclass(eq=False, slots=True)
class _Buffered:
    """One delivery held in memory, shared by the local channels that still hold it."""

    message: Message
    expires_at: float
    holders: list[str]
    shared: bool  # more than one local recipient: each gets its own shallow copy


@dataclass(eq=False, slots=True)
class ChannelBuffer(Generic[W]):
    """A local channel: its undelivered messages (oldest first) and its waiting receivers (first come first)."""

    messages: deque[_Buffered] = field(default_factory=deque)
    waiters: deque[W] = field(default_factory=deque)
    read_at: float = -math.inf  # when a receiver last took a message from it (while it held any since)

    def being_read(self, now: float) -> bool:
        return bool(self.waiters) or now - self.read_at < READING_WINDOW


def biggest_idle_backlog(buffers: dict[str, ChannelBuffer[W]], now: float) -> tuple[str, ChannelBuffer[W]] | None:
    """The idle channel with the largest backlog, if any channel that holds messages is idle."""
    idle = [item for item in buffers.items() if item[1].messages and not item[1].being_read(now)]
    return max(idle, key=lambda item: len(item[1].messages)) if idle else None


def first_turning_idle(buffers: dict[str, ChannelBuffer[W]], now: float) -> float:
    """When the first channel that holds messages and is being read (by its last take) turns idle; always after
    `now` (infinity if none will)."""
    read = [b.read_at for b in buffers.values() if b.messages and not b.waiters and b.being_read(now)]
    return min(read) + READING_WINDOW if read else math.inf


class RecentReads:
    """When channels that hold nothing now were last read, for `READING_WINDOW` seconds: a channel whose reader is
    busy with the message it was handed is still being read when the next one comes. Each `keep` forgets the
    entries older than the window at the front (oldest first)."""

    def __init__(self) -> None:
        self._read_at: OrderedDict[str, float] = OrderedDict()

    def keep(self, channel: str, read_at: float) -> None:
        if read_at == -math.inf:
            return  # never read
        self._read_at[channel] = read_at
        self._read_at.move_to_end(channel)
        self.forget_before(read_at - READING_WINDOW)

    def next_due(self) -> float:
        """When to forget old entries (infinity: none kept): a window after the oldest is stale, so that one
        `expire` forgets a window's worth at once, not one entry per timer."""
        return next(iter(self._read_at.values())) + 2 * READING_WINDOW if self._read_at else math.inf

    def forget_before(self, time: float) -> None:
        """Forget the entries at the front (the oldest kept) read at `time` or before."""
        while self._read_at and next(iter(self._read_at.values())) <= time:
            self._read_at.popitem(last=False)

    def last(self, channel: str) -> float:
        """When `channel` was last read (-inf: not within the window, as far as is kept); forgets it."""
        return self._read_at.pop(channel, -math.inf)

    def clear(self) -> None:
        self._read_at.clear()

    def __len__(self) -> int:
        return len(self._read_at)


@dataclass(frozen=True, slots=True)
class Handoff(Generic[W]):
    """Give `message` to `waiter`; if that fails, `put_back(channel, message, expires_at)`."""

    waiter: W
    channel: str
    message: Message
    expires_at: float


@dataclass(frozen=True, slots=True)
class Drop:
    """A message this process accepted and will not deliver, and why: for the log."""

    channel: str
    reason: DropReason  # CAPACITY, CHANNEL_CAPACITY, DIRECT_OVER_CAPACITY, EXPIRED or NO_LOCAL_MEMBER


@dataclass(slots=True)
class Effects(Generic[W, T]):
    """What the owner must do after an `Inbox` call: hand off, acknowledge, log, unbind."""

    handoffs: list[Handoff[W]] = field(default_factory=list)
    acks: list[T] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    unbind: list[str] = field(default_factory=list)
    memberships_expired: int = 0  # memberships dropped for being older than group_expiry
    paused: bool = False  # this call started holding deliveries (capacity reached, nobody waiting)


class GroupMembership:
    """Which local channels are in which group, and since when.

    Kept small, since a site may hold tens of thousands of memberships: each group's members are a dict in the order
    of their last `group_add` (a refresh moves the member to the end), so a group's oldest membership is its first;
    the age heap holds one live entry per group, its oldest membership (entries that no longer match are stale and
    skipped); a channel's groups are a tuple (most channels are in one or two groups).

    Bounds: an entry of `_members` and `_groups_of` lives from a membership's `add` to its `discard` (by the layer's
    `group_discard`, its channel's expiry, `group_expiry`, `flush`). The age heap holds at most twice the groups
    plus `AGE_HEAP_SLACK` entries: a stale entry deep in the heap is never reached while an old membership stays at
    its head, so the heap compacts itself past that size.
    """

    def __init__(self) -> None:
        self._members: dict[str, dict[str, float]] = {}  # group -> {channel: time of the last group_add}, oldest first
        self._groups_of: dict[str, tuple[str, ...]] = {}  # channel -> groups
        self._by_age: list[tuple[float, str]] = []  # heap of (oldest membership, group); stale once that changed
        self._count = 0  # memberships

    def add(self, group: str, channel: str, now: float) -> bool:
        """Add (or refresh) a membership. True when `group` had no local member before: bind it."""
        members = self._members.get(group)
        first = members is None
        if members is None:
            members = self._members[group] = {}
        was_oldest = not first and _first_key(members) == channel
        members.pop(channel, None)  # so that the refreshed membership moves to the end: the youngest
        members[channel] = now
        groups = self._groups_of.get(channel, ())
        if group not in groups:
            self._groups_of[channel] = (*groups, group)
            self._count += 1
        if first or was_oldest:
            self._push_age(group, members)
        return first

    def oldest(self) -> float | None:
        """When the least recently added membership was added (None: no membership)."""
        by_age = self._by_age
        while by_age:
            added, group = by_age[0]
            members = self._members.get(group)
            if members and members[_first_key(members)] == added:
                return added
            heapq.heappop(by_age)  # the group is gone, or its oldest membership changed since
        return None

    def expire(self, added_before: float) -> tuple[int, list[str]]:
        """Drop memberships last added before `added_before`: how many, and the groups left with no member."""
        dropped, emptied = 0, []
        while (oldest := self.oldest()) is not None and oldest < added_before:
            _, group = heapq.heappop(self._by_age)
            for channel, added in list(self._members[group].items()):  # oldest first
                if added >= added_before:
                    break
                dropped += 1
                if self.discard(group, channel):
                    emptied.append(group)
        return dropped, emptied

    def discard(self, group: str, channel: str) -> bool:
        """Remove a membership if present. True when that left `group` with no local member: unbind it."""
        members = self._members.get(group)
        if members is None or channel not in members:
            return False
        was_oldest = _first_key(members) == channel
        del members[channel]
        self._count -= 1
        groups = tuple(other for other in self._groups_of[channel] if other != group)
        if groups:
            self._groups_of[channel] = groups
        else:
            del self._groups_of[channel]
        if not members:
            del self._members[group]
            return True
        if was_oldest:
            self._push_age(group, members)
        return False

    def _push_age(self, group: str, members: dict[str, float]) -> None:
        """The group's oldest membership changed: push its new age, compacting the heap if stale entries abound."""
        by_age = self._by_age
        heapq.heappush(by_age, (members[_first_key(members)], group))
        if len(by_age) > 2 * len(self._members) + AGE_HEAP_SLACK:
            by_age[:] = [(oldest[_first_key(oldest)], name) for name, oldest in self._members.items()]
            heapq.heapify(by_age)

    def remove_channel(self, channel: str) -> list[str]:
        """Remove `channel` from all its groups; returns the groups left with no local member."""
        emptied = []
        for group in sorted(self._groups_of.get(channel, ())):
            if self.discard(group, channel):
                emptied.append(group)
        return emptied

    def members(self, group: str) -> list[str]:
        return list(self._members.get(group, ()))

    def groups(self) -> list[str]:
        """The groups with at least one local member: the bindings this process needs."""
        return list(self._members)

    @property
    def group_count(self) -> int:
        return len(self._members)

    @property
    def membership_count(self) -> int:
        """Memberships held: one per (group, channel)."""
        return self._count

    def age_heap_size(self) -> int:
        return len(self._by_age)

    def clear(self) -> list[str]:
        """Drop every membership; returns the groups that had members (to unbind)."""
        groups = list(self._members)
        self._members.clear()
        self._groups_of.clear()
        self._by_age.clear()
        self._count = 0
        return groups


def _first_key(members: dict[str, float]) -> str:
    return next(iter(members))


class ExpiryHeap:
    """The buffered deliveries by expiry time. An entry whose delivery no channel holds any more is stale: skipped
    when it reaches the head, and dropped in one pass once stale entries outnumber the live ones by far."""

    __slots__ = ("_heap", "_sequence")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Buffered]] = []
        self._sequence = itertools.count()  # ties broken in arrival order, never by comparing deliveries

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, buffered: _Buffered) -> None:
        heapq.heappush(self._heap, (buffered.expires_at, next(self._sequence), buffered))

    def next_due(self) -> float:
        """When the oldest delivery still held expires (inf: none is held)."""
        heap = self._heap
        while heap and not heap[0][2].holders:
            heapq.heappop(heap)
        return heap[0][0] if heap else math.inf

    def pop_due(self, now: float) -> Iterator[_Buffered]:
        """Take out every entry due by `now`, stale ones included (their `holders` are empty)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            yield heapq.heappop(heap)[2]

    def compact_if_stale(self, live: int) -> None:
        """A delivery left its last channel; `live` are still held: compact if stale entries abound."""
        if len(self._heap) > 2 * live + EXPIRY_HEAP_SLACK:
            self._heap[:] = [entry for entry in self._heap if entry[2].holders]
            heapq.heapify(self._heap)

    def clear(self) -> None:
        self._heap.clear()


class Inbox(Generic[W, T]):
    """Everything the process holds for its local channels. See the module's theory of operation."""

    def __init__(
        self,
        local_capacity: int,
        expiry: float,
        group_expiry: float = math.inf,
        channel_capacity: Callable[[str], int] = lambda _channel: sys.maxsize,
    ) -> None:
        self.local_capacity = local_capacity  # the most messages the process holds in memory, all channels together
        self.expiry = expiry
        self.group_expiry = group_expiry
        self.channel_capacity = channel_capacity  # the most messages one channel may hold in memory
        self.membership = GroupMembership()
        self._buffers: dict[str, ChannelBuffer[W]] = {}
        self._held: deque[tuple[T, Recipient, Message]] = deque()
        self._expiries = ExpiryHeap()
        self._in_memory = 0  # deliveries held by at least one channel
        self._waiting = 0  # waiters over all channels
        self._recheck_at = math.inf  # while deliveries are held and someone waits: when a backlog may turn idle
        self._reads = RecentReads()  # when channels with no buffer now were last read, within READING_WINDOW
        self.handed_over = 0  # messages handed to receivers since start (a figure for stats())
        self.put_backs = 0  # messages put back by receivers that could not take them, since start

    # -- the delivery side -------------------------------------------------------------------------------------

    def offer(self, token: T, recipient: Recipient, message: Message, now: float) -> Effects[W, T]:
        """A delivery arrived from the broker: route and acknowledge it, or hold it (capacity reached)."""
        effects: Effects[W, T] = Effects()
        self._expire(now, effects)
        if self._held or not self._has_room(now):
            effects.paused = not self._held
            self._held.append((token, recipient, message))
            self._recheck_at = first_turning_idle(self._buffers, now) if self._waiting else math.inf
            return effects
        self._route(recipient, message, now, effects)
        effects.acks.append(token)
        return effects

    def discard_held(self) -> int:
        """The connection that delivered the held messages is gone (and its queue with them): forget them."""
        count = len(self._held)
        self._held.clear()
        return count

    # -- the receiver side -------------------------------------------------------------------------------------

    def take(self, channel: str, waiter: W, now: float) -> Effects[W, T]:
        """A receive() call: hand it the head of `channel`, or let it wait for the next message."""
        effects: Effects[W, T] = Effects()
        self._expire(now, effects)
        buffer = self._buffer(channel)
        if buffer.messages:
            message, expires_at = self._pop(channel, buffer, now)
            effects.handoffs.append(Handoff(waiter, channel, message, expires_at))
            self.handed_over += 1
            self._forget_if_empty(channel, buffer)
        else:
            buffer.waiters.append(waiter)
            self._waiting += 1
        self._let_in_held(now, effects)
        return effects

    def take_ready(self, channel: str, now: float) -> Message | None:
        """The head of `channel`, when taking it is all a receive() needs: it is there, fresh, and no held delivery
        waits for the room that taking it makes. None: call `take` (it does the rest)."""
        if self._held:
            return None
        buffer = self._buffers.get(channel)
        if buffer is None or not buffer.messages or buffer.messages[0].expires_at <= now:
            return None
        message, _ = self._pop(channel, buffer, now)
        self.handed_over += 1
        self._forget_if_empty(channel, buffer)
        return message

    def wait_ready(self, channel: str, waiter: W) -> bool:
        """Let `waiter` wait on `channel`, when that is all a receive() needs: nothing is buffered there and no
        delivery is held (a new waiter makes room for held ones, which `take` routes). False: call `take`."""
        buffer = self._buffers.get(channel)
        if self._held or (buffer is not None and buffer.messages):
            return False
        self._buffer(channel).waiters.append(waiter)
        self._waiting += 1
        return True

    def forget(self, channel: str, waiter: W) -> bool:
        """A waiting receive() went away. False when it was no longer waiting (it was handed a message)."""
        buffer = self._buffers.get(channel)
        if buffer is None:
            return False
        try:
            buffer.waiters.remove(waiter)
        except ValueError:
            return False
        self._waiting -= 1
        self._forget_if_empty(channel, buffer)
        return True

    def put_back(self, channel: str, message: Message, expires_at: float, now: float) -> Effects[W, T]:
        """A handed-off message was not taken: give it to the next waiter, or back to the head of its channel."""
        effects: Effects[W, T] = Effects()
        self.put_backs += 1
        buffer = self._buffer(channel)
        if buffer.waiters:
            buffer.read_at = now
            self._hand_to_next_waiter(buffer, channel, message, expires_at, effects)
        else:
            buffered = _Buffered(message, expires_at, [channel], shared=False)
            buffer.messages.appendleft(buffered)
            self._remember(buffered)
        self._expire(now, effects)
        return effects

    # -- time --------------------------------------------------------------------------------------------------

    def expire(self, now: float) -> Effects[W, T]:
        """Drop messages older than `expiry` and memberships older than `group_expiry`; refill from held ones."""
        effects: Effects[W, T] = Effects()
        self._reads.forget_before(now - READING_WINDOW)
        self._expire(now, effects)
        effects.memberships_expired, emptied = self.membership.expire(now - self.group_expiry)
        effects.unbind.extend(emptied)
        self._let_in_held(now, effects)
        return effects

    def next_expiry(self) -> float | None:
        """When a message or membership expires next, or held deliveries are looked at again; call `expire` then."""
        message = self._expiries.next_due()
        oldest_membership = self.membership.oldest()
        membership = math.inf if oldest_membership is None else oldest_membership + self.group_expiry
        due = min(message, membership, self._recheck_at, self._reads.next_due())
        return None if due == math.inf else due

    # -- the whole -----------------------------------------------------------------------------------------------

    @property
    def in_memory(self) -> int:
        """Deliveries held in memory (a group delivery counts once)."""
        return self._in_memory

    @property
    def held(self) -> int:
        """Deliveries received but neither routed nor acknowledged (capacity reached, nobody waiting)."""
        return len(self._held)

    @property
    def waiting(self) -> int:
        return self._waiting

    def waiting_channels(self) -> list[str]:
        return [name for name, buffer in self._buffers.items() if buffer.waiters]

    def waiting_on(self, channel: str) -> int:
        buffer = self._buffers.get(channel)
        return len(buffer.waiters) if buffer else 0

    def biggest_backlogs(self, count: int = 3) -> list[tuple[str, int]]:
        sizes = ((name, len(buffer.messages)) for name, buffer in self._buffers.items() if buffer.messages)
        return sorted(sizes, key=lambda item: -item[1])[:count]

    def channel_count(self) -> int:
        return len(self._buffers)

    def bookkeeping(self) -> dict[str, int]:
        """The entries of each structure kept by name or by message (the bounds are in the module's docstring)."""
        return {
            "channel_buffers": len(self._buffers),
            "recent_reads": len(self._reads),
            "expiry_entries": len(self._expiries),
            "memberships": self.membership.membership_count,
            "membership_ages": self.membership.age_heap_size(),
        }

    def flush(self) -> tuple[list[T], list[str], int]:
        """flush(): drop every message and membership, keep waiting receivers. Returns the held tokens (acknowledge
        them: their messages are dropped), the groups to unbind, and how many messages were dropped."""
        held = [token for token, _, _ in self._held]
        dropped = self._in_memory + len(self._held)
        self._held.clear()
        self._expiries.clear()
        self._in_memory = 0
        for channel, buffer in list(self._buffers.items()):
            buffer.messages.clear()
            self._forget_if_empty(channel, buffer)
        return held, self.membership.clear(), dropped

    def close(self) -> tuple[list[W], int]:
        """Empty everything. Returns the waiters still waiting and how many messages are dropped."""
        waiters = [waiter for buffer in self._buffers.values() for waiter in buffer.waiters]
        dropped = self._in_memory + len(self._held)
        self._buffers.clear()
        self._reads.clear()
        self._held.clear()
        self._expiries.clear()
        self._in_memory = self._waiting = 0
        return waiters, dropped

    # -- internals ---------------------------------------------------------------------------------------------

    def _has_room(self, now: float) -> bool:
        """Room for one more delivery: under capacity, or an idle backlog to shed while someone waits."""
        return self._in_memory < self.local_capacity or (
            self._waiting > 0 and biggest_idle_backlog(self._buffers, now) is not None
        )

    def _route(self, recipient: Recipient, message: Message, now: float, effects: Effects[W, T]) -> None:
        if recipient.is_group:
            channels = self.membership.members(recipient.name)
            if not channels:
                effects.drops.append(Drop(recipient.name, DropReason.NO_LOCAL_MEMBER))
                return
        else:
            channels = [recipient.name]
        shared = len(channels) > 1
        expires_at = now + self.expiry
        buffered = _Buffered(message, expires_at, [], shared)
        full = DropReason.CHANNEL_CAPACITY if recipient.is_group else DropReason.DIRECT_OVER_CAPACITY
        for channel in channels:
            buffer = self._buffer(channel)
            if buffer.waiters:
                copy = dict(message) if shared else message
                buffer.read_at = now
                self._hand_to_next_waiter(buffer, channel, copy, expires_at, effects)
            elif len(buffer.messages) >= self.channel_capacity(channel) and not buffer.being_read(now):
                effects.drops.append(Drop(channel, full))  # the newcomer goes, never what the channel holds
            else:
                buffered.holders.append(channel)
                buffer.messages.append(buffered)
        if buffered.holders:
            self._remember(buffered)
            self._shed(now, effects)

    def _buffer(self, channel: str) -> ChannelBuffer[W]:
        buffer = self._buffers.get(channel)
        if buffer is None:
            buffer = self._buffers[channel] = ChannelBuffer(read_at=self._reads.last(channel))
        return buffer

    def _hand_to_next_waiter(
        self, buffer: ChannelBuffer[W], channel: str, message: Message, expires_at: float, effects: Effects[W, T]
    ) -> None:
        """Hand `message` to the channel's first waiter (its caller sets `buffer.read_at`: a hand-off is a read)."""
        self._waiting -= 1
        self.handed_over += 1
        effects.handoffs.append(Handoff(buffer.waiters.popleft(), channel, message, expires_at))
        self._forget_if_empty(channel, buffer)

    def _remember(self, buffered: _Buffered) -> None:
        self._in_memory += 1
        self._expiries.push(buffered)

    def _shed(self, now: float, effects: Effects[W, T]) -> None:
        """Over capacity (while someone waits): drop the oldest message of the biggest idle backlog."""
        while self._in_memory > self.local_capacity and (idle := biggest_idle_backlog(self._buffers, now)) is not None:
            channel, buffer = idle
            buffered = buffer.messages.popleft()
            self._drop_holder(buffered, channel)
            effects.drops.append(Drop(channel, DropReason.CAPACITY))
            self._forget_if_empty(channel, buffer)

    def _pop(self, channel: str, buffer: ChannelBuffer[W], now: float) -> tuple[Message, float]:
        """Take the head of `channel` for a receiver: the message (its own copy if shared) and its expiry."""
        buffer.read_at = now
        buffered = buffer.messages.popleft()
        self._drop_holder(buffered, channel)
        return (dict(buffered.message) if buffered.shared else buffered.message), buffered.expires_at

    def _drop_holder(self, buffered: _Buffered, channel: str) -> None:
        buffered.holders.remove(channel)
        if not buffered.holders:
            self._in_memory -= 1
            self._expiries.compact_if_stale(self._in_memory)

    def _let_in_held(self, now: float, effects: Effects[W, T]) -> None:
        while self._held and self._has_room(now):
            token, recipient, message = self._held.popleft()
            self._route(recipient, message, now, effects)
            effects.acks.append(token)
        self._recheck_at = first_turning_idle(self._buffers, now) if self._held and self._waiting else math.inf

    def _expire(self, now: float, effects: Effects[W, T]) -> None:
        for buffered in self._expiries.pop_due(now):
            for channel in buffered.holders:
                buffer = self._buffers[channel]
                buffer.messages.remove(buffered)
                effects.drops.append(Drop(channel, DropReason.EXPIRED))
                effects.unbind.extend(self.membership.remove_channel(channel))
                self._forget_if_empty(channel, buffer)
            if buffered.holders:
                buffered.holders.clear()
                self._in_memory -= 1

    def _forget_if_empty(self, channel: str, buffer: ChannelBuffer[W]) -> None:
        if not buffer.messages and not buffer.waiters:
            del self._buffers[channel]
            self._reads.keep(channel, buffer.read_at)
