"""How often a socket or a sandbox may ask: the decisions, as plain objects and functions."""

from dataclasses import dataclass, field

from django.core.cache import cache

# Per socket: a person's session socket sends a prompt, a cancel or a ping now and then; a burst is a script.
SESSION_SOCKET_RATE, SESSION_SOCKET_BURST = 10.0, 60
# Per bridge socket: a busy run streams a few hundred text deltas a second at most.
BRIDGE_SOCKET_RATE, BRIDGE_SOCKET_BURST = 500.0, 2000
# Screenshot uploads per sandbox and minute (the agent's tool and people's button together).
SCREENSHOTS_PER_MINUTE = 20
# Invitations per owner and minute: a person invites a few colleagues; more is someone probing for accounts.
INVITES_PER_MINUTE = 20


@dataclass
class TokenBucket:
    """`rate` messages a second on average, `burst` at once. `allow(now)` spends one if there is one."""
    rate: float
    burst: int
    tokens: float = field(init=False)
    last: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def allow(self, now: float) -> bool:
        if self.last is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def per_minute_allowed(name: str, who, limit: int, now: float) -> bool:
    """Whether `who` may do `name` once more this minute: at most `limit` times, counted in the shared cache
    (across web processes). Synchronous."""
    key = f"rate:{name}:{who}:{int(now // 60)}"
    cache.add(key, 0, 120)
    try:
        return cache.incr(key) <= limit
    except ValueError:  # expired between add and incr: a new minute
        return True


def screenshot_allowed(sandbox_id, now: float) -> bool:
    """Whether a sandbox may upload one more screenshot this minute."""
    return per_minute_allowed("screenshots", sandbox_id, SCREENSHOTS_PER_MINUTE, now)


def invite_allowed(user_id: int, now: float) -> bool:
    """Whether a person may send one more invitation this minute."""
    return per_minute_allowed("invites", user_id, INVITES_PER_MINUTE, now)  # read now: tests may lower it
