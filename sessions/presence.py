"""Who is looking at a session now, on which surface, and who is typing, across devices and Daphnes.

Nothing is stored: presence lives in the sockets. A subscriber that names its surface (a person's page)
takes part; one that does not (a script, the benches) is neither shown nor told. Each such socket announces
itself to the session's group (`presence.here`) when it subscribes and every HEARTBEAT_SECONDS after; whoever
hears a newcomer's first announcement answers it directly, so the newcomer learns who was there before it. A
socket that closes says `presence.leave`; one whose Daphne died is dropped once it has not been heard from
for EXPIRE_SECONDS. Each socket keeps what it heard in a PresenceBook and sends its browser the people in it
whenever they change. Typing is forwarded at most every TYPING_FORWARD_SECONDS per socket (`presence.typing`);
the page shows it for a few seconds after the last one. See docs/sessions.md.
"""

from dataclasses import dataclass

SURFACES = ("web", "phone", "extension", "slack")
HEARTBEAT_SECONDS = 20.0
EXPIRE_SECONDS = 50.0  # two heartbeats missed, and some slack
TYPING_FORWARD_SECONDS = 1.5  # at most one typing notice per socket this often


@dataclass
class Peer:
    user_id: int
    name: str  # as people chose it (their full name): the username beside it says who they are
    username: str
    surface: str
    heard_at: float


class PresenceBook:
    """The sockets one socket has heard from, by channel name. Each change returns whether the
    people shown (who, and on which surfaces) changed."""

    def __init__(self) -> None:
        self.peers: dict[str, Peer] = {}

    def heard(self, channel: str, user_id: int, name: str, username: str, surface: str, now: float) -> bool:
        before = self.people()
        self.peers[channel] = Peer(user_id, name, username, surface, now)
        return self.people() != before

    def left(self, channel: str) -> bool:
        before = self.people()
        self.peers.pop(channel, None)
        return self.people() != before

    def expire(self, now: float) -> bool:
        before = self.people()
        self.peers = {c: p for c, p in self.peers.items() if now - p.heard_at < EXPIRE_SECONDS}
        return self.people() != before

    def people(self) -> list[dict]:
        """Each person once, with the surfaces they are on, by name: what the page shows."""
        by_user: dict[int, dict] = {}
        for peer in self.peers.values():
            person = by_user.setdefault(peer.user_id, {"id": peer.user_id, "name": peer.name,
                                                       "username": peer.username, "surfaces": []})
            if peer.surface not in person["surfaces"]:
                person["surfaces"].append(peer.surface)
        for person in by_user.values():
            person["surfaces"].sort(key=SURFACES.index)
        return sorted(by_user.values(), key=lambda p: (p["name"].lower(), p["id"]))


def clean_surface(value: object) -> str | None:
    """The surface a subscriber says it is on, or None when it is not one."""
    return value if isinstance(value, str) and value in SURFACES else None


def display_name(user) -> str:
    return user.get_full_name() or user.get_username()
