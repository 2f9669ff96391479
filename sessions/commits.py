"""Who a commit names: the prompt's author, and as co-authors the other members whose prompts ran since the
branch's last commit without one of their own (a question, a plan, a stopped run: they shaped this change).
`co_author_ids` decides as a pure function; `commit_spec` builds what the prompt's command tells the bridge to
commit when the run ends."""

import re
from urllib.parse import urlsplit

from allauth.socialaccount.models import SocialAccount
from django.conf import settings

from bridge.protocol import CommitSpec, Person
from sessions.models import Prompt, Session

MAX_SUBJECT_CHARS = 72
MAX_MESSAGE_CHARS = 4000
MAX_PERSON_CHARS = 200  # bridge/branch.py check_person refuses longer
# What git would take as the end of a name or an address, and control characters.
UNSAFE = re.compile(r"[<>\x00-\x1f\x7f]")


def co_author_ids(author_id: int | None, earlier: list[tuple[int | None, bool]]) -> list[int]:
    """`earlier`: (author id, made a commit) for each prompt that ran before this one, oldest first. The
    co-authors are the distinct other authors of the ones after the last that made a commit."""
    since = earlier
    for index in range(len(earlier) - 1, -1, -1):
        if earlier[index][1]:
            since = earlier[index + 1:]
            break
    ids: list[int] = []
    for other, _ in since:
        if other is not None and other != author_id and other not in ids:
            ids.append(other)
    return ids


def clean(text: str, fallback: str) -> str:
    return " ".join(UNSAFE.sub(" ", text).split())[:MAX_PERSON_CHARS] or fallback


def noreply_domain() -> str:
    """GitHub's no-reply addresses: users.noreply.github.com, or users.noreply.<host> on an Enterprise Server."""
    host = urlsplit(settings.GITHUB_URL).hostname or "github.com"
    return "users.noreply.github.com" if host == "github.com" else f"users.noreply.{host}"


def person(user) -> Person:
    """A member as git names them: their name, and their GitHub no-reply address where they connected GitHub
    (so the commit links to their GitHub account without showing their email), else their account's email."""
    name = clean(user.get_full_name() or user.get_username(), "someone")
    account = SocialAccount.objects.filter(user=user, provider="github").first()
    if account is not None:
        login = str(account.extra_data.get("login") or "")
        email = f"{account.uid}+{login}@{noreply_domain()}" if login else f"{account.uid}@{noreply_domain()}"
    else:
        email = user.email or f"{user.get_username()}@users.noreply.inspect"
    return {"name": name, "email": clean(email, "someone@users.noreply.inspect").replace(" ", "")}


def message_for(prompt: Prompt) -> str:
    """The commit message the platform writes from the prompt: its first line as the subject (shortened to 72
    characters), and below it the whole prompt when the subject does not hold all of it."""
    text = prompt.text.strip()
    first, _, rest = text.partition("\n")
    subject = first.strip()
    if len(subject) > MAX_SUBJECT_CHARS:
        subject = subject[:MAX_SUBJECT_CHARS - 3].rstrip() + "..."
    body = text if (rest.strip() or len(first.strip()) > MAX_SUBJECT_CHARS) else ""
    message = f"{subject or 'Changes from an Inspect session'}\n\n{body}".strip()
    return message[:MAX_MESSAGE_CHARS]


def commit_spec(session: Session, prompt: Prompt) -> CommitSpec | None:
    """What `prompt`'s run commits when it ends, or None when no member wrote it (a former member's)."""
    if prompt.author is None:
        return None
    earlier = session.prompts.filter(position__lt=prompt.position, started_at__isnull=False).order_by("position")
    ids = co_author_ids(prompt.author_id, [(a, bool(sha)) for a, sha in earlier.values_list("author_id", "commit_sha")])
    users = {u.pk: u for u in type(prompt.author).objects.filter(pk__in=ids)}
    return {"branch": session.branch, "author": person(prompt.author),
            "co_authors": [person(users[i]) for i in ids if i in users], "message": message_for(prompt)}
