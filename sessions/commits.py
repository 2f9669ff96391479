"""Who a commit names: the prompt's author, and as co-authors the other members whose prompts ran since the
branch's last commit without one of their own (a question, a plan, a stopped run: they shaped this change).
`co_author_ids` decides as a pure function; `commit_command` builds the bridge's `commit` command."""

from allauth.socialaccount.models import SocialAccount
from django.db.models import Max

from bridge.protocol import CommitCommand, Person
from sessions.models import Prompt, Session

MAX_SUBJECT_CHARS = 72
MAX_MESSAGE_CHARS = 4000


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


def person(user) -> Person:
    """A member as git names them: their name, and their GitHub no-reply address where they connected GitHub
    (so the commit links to their GitHub account without showing their email), else their account's email."""
    name = (user.get_full_name() or user.get_username()).replace("\n", " ").replace("<", "").replace(">", "")[:200]
    account = SocialAccount.objects.filter(user=user, provider="github").first()
    if account is not None:
        login = str(account.extra_data.get("login") or "")
        email = f"{account.uid}+{login}@users.noreply.github.com" if login else \
            f"{account.uid}@users.noreply.github.com"
    else:
        email = user.email or f"{user.get_username()}@users.noreply.inspect"
    return {"name": name or "someone", "email": email.replace("\n", "").replace("<", "").replace(">", "")[:200]}


def message_for(prompt: Prompt) -> str:
    """The commit message the platform writes from the prompt: its first line as the subject, the rest below."""
    text = prompt.text.strip()
    first, _, rest = text.partition("\n")
    subject = first.strip()
    if len(subject) > MAX_SUBJECT_CHARS:
        subject = subject[:MAX_SUBJECT_CHARS - 3].rstrip() + "..."
    body = text if (rest.strip() or len(first.strip()) > MAX_SUBJECT_CHARS) else ""
    message = f"{subject or 'Changes from an Inspect session'}\n\n{body}".strip()
    return message[:MAX_MESSAGE_CHARS]


def commit_command(session: Session, prompt: Prompt) -> CommitCommand | None:
    """The bridge's `commit` command for `prompt`'s finished run, or None when no member wrote it."""
    if prompt.author is None:
        return None
    last_commit = session.prompts.exclude(commit_sha="").aggregate(last=Max("position"))["last"] or 0
    earlier = list(session.prompts.filter(position__lt=prompt.position, started_at__isnull=False)
                   .order_by("position").values_list("author_id", "commit_sha", "position"))
    ids = co_author_ids(prompt.author_id, [(a, bool(sha) or pos <= last_commit) for a, sha, pos in earlier])
    users = {u.pk: u for u in type(prompt.author).objects.filter(pk__in=ids)}
    return {"name": "commit", "prompt_id": prompt.pk, "branch": session.branch, "author": person(prompt.author),
            "co_authors": [person(users[i]) for i in ids if i in users], "message": message_for(prompt)}
