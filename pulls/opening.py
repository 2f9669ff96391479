"""Opening a session's pull request, as the person who asks: push the branch the sandbox handed over, then open
the pull request (or take the one already open), and remember it. Later hand-offs are pushed to the same one."""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from githubkit.exception import GitHubException, RequestFailed

from bridge.protocol import PULL_REQUEST_MAX_BODY_CHARS, PULL_REQUEST_MAX_TITLE_CHARS
from pulls import branches, github_api, tokens
from pulls.models import GitHubToken, PullRequest
from sessions import commits
from sessions.models import Session

logger = logging.getLogger(__name__)
MAX_TITLE_CHARS, MAX_BODY_CHARS = PULL_REQUEST_MAX_TITLE_CHARS, PULL_REQUEST_MAX_BODY_CHARS


class CannotOpen(Exception):
    """Why no pull request was opened, in words for the person who asked."""


@dataclass(frozen=True)
class Credentials:
    token: str = field(repr=False)
    for_person: str  # "" when it is the person's own token; their name when the bot opens it for them


def prefilled(session: Session, site_url: str) -> tuple[str, str]:
    """The title and description the dialog starts with: the session's title (else its first prompt's first
    line), a link back to the session, and each prompt that ran with its author."""
    prompts = list(session.prompts.filter(started_at__isnull=False).select_related("author").order_by("position"))
    first_line = (prompts[0].text.strip().splitlines() or [""])[0] if prompts else ""
    title = session.title or first_line or f"Inspect session #{session.pk}"
    link = f"{site_url.rstrip('/')}{reverse('session-detail', args=[session.pk])}"
    lines = [f"Made in [Inspect session #{session.pk}]({link}).", ""]
    for prompt in prompts:
        lines.append(f"- {prompt.author_name()}: {(prompt.text.strip().splitlines() or [''])[0][:200]}")
    return title[:MAX_TITLE_CHARS], "\n".join(lines)[:MAX_BODY_CHARS]


def github_problem(user) -> str:
    """Why a pull request could not be opened as `user` ("" when it can), from the database alone."""
    if settings.GITHUB_BOT_TOKEN or tokens.has_usable_token(user):
        return ""
    again = GitHubToken.objects.filter(user=user).exists()
    return tokens.connect_message(again=again)


def credentials_for(user) -> Credentials:
    try:
        return Credentials(tokens.access_token_for(user), "")
    except tokens.NoToken as no_token:
        if not settings.GITHUB_BOT_TOKEN:
            raise CannotOpen(str(no_token)) from None
        return Credentials(settings.GITHUB_BOT_TOKEN, user.get_full_name() or user.get_username())


def push_url(session: Session) -> str:
    """Where the branch goes: the repo on GITHUB_URL over HTTPS, whatever the clone URL (an ssh one would need a
    key; a mirror's would not be GitHub). The token goes in a header."""
    repo = session.repo
    if not repo.github_repo:
        raise CannotOpen(f"The repo {repo.name} is not on GitHub ({settings.GITHUB_URL}): its clone URL is "
                         f"{repo.clone_url}. An admin can set its GitHub repository.")
    return f"{github_api.web_url()}/{repo.github_repo}.git"


def people_of(session: Session) -> set[str]:
    """The git addresses the session's commits may carry: each one the control plane gave its bridge to commit
    with (a person's may have changed since, say once they connected GitHub), and its members' as of now."""
    given = {email for people in session.prompts.values_list("commit_people", flat=True) for email in people or []}
    return given | {commits.person(m.user)["email"] for m in session.memberships.select_related("user")}


def push_branch(session: Session, credentials: Credentials) -> branches.PushResult:
    return branches.push_to_origin(session.pk, session.branch, push_url(session), credentials.token,
                                   session.repo.default_branch, people_of(session))


def open_pull_request(session: Session, user, draft: bool, title: str, body: str) -> PullRequest:
    """Push the branch and open its pull request as `user` (or the bot, for them). When the session's pull
    request is open already, push to it and give it this title and description. Raises CannotOpen."""
    if not session.can_prompt(user):
        raise CannotOpen("Only the session's members who can prompt open its pull request.")
    push_url(session)  # a repo that is not on GitHub: say so before anything else
    credentials = credentials_for(user)
    pushed = push_branch(session, credentials)
    if not pushed.ok:
        if branches.refused_credentials(pushed.reason):
            forget_token(user, credentials)
            raise CannotOpen(tokens.connect_message(again=True))
        raise CannotOpen(f"The push of {session.branch} was refused:\n{pushed.reason}")
    if credentials.for_person:
        body = f"Opened for {credentials.for_person}.\n\n{body}"
    title = title.strip()[:MAX_TITLE_CHARS] or f"Inspect session #{session.pk}"
    owner, name = session.repo.github_repo.split("/", 1)
    github = github_api.client(credentials.token)
    existing = session.pull_requests.filter(state=PullRequest.State.OPEN, opened_through_platform=True).first()
    answer: dict | None
    try:
        if existing is not None:
            answer = dict(github.rest.pulls.update(owner, name, existing.number,
                                                   data={"title": title, "body": body[:MAX_BODY_CHARS]}).json())
        else:
            answer = dict(github.rest.pulls.create(owner, name, data={
                "title": title, "head": session.branch, "base": session.repo.default_branch,
                "body": body[:MAX_BODY_CHARS], "draft": bool(draft)}).json())
    except GitHubException as error:
        answer = already_open(github, owner, name, session.branch, error)
        if answer is None:
            problem = github_api.error_from(error, "opening the pull request")
            if problem.bad_token:
                forget_token(user, credentials)
                raise CannotOpen(f"{problem} {tokens.connect_message(again=True)}") from None
            raise CannotOpen(str(problem)) from None
    return remember(session, user, answer, pushed.sha)


def already_open(github, owner: str, name: str, branch: str, error: GitHubException) -> dict | None:
    """GitHub's 422 "A pull request already exists" (opened on GitHub, or by an earlier attempt): that one."""
    if not isinstance(error, RequestFailed) or error.response.status_code != 422:
        return None
    if "already exists" not in github_api.github_message(error):
        return None
    try:
        found = github.rest.pulls.list(owner, name, head=f"{owner}:{branch}", state="open").json()
    except GitHubException:
        return None
    return dict(found[0]) if found else None


def remember(session: Session, user, answer: dict, sha: str) -> PullRequest:
    pull, _ = PullRequest.objects.update_or_create(repo=session.repo, number=int(answer["number"]), defaults={
        "session": session, "opened_by": user, "opened_through_platform": True,
        "author_login": str((answer.get("user") or {}).get("login") or ""), "title": str(answer.get("title") or ""),
        "url": str(answer.get("html_url") or ""), "head_branch": session.branch,
        "base_branch": str((answer.get("base") or {}).get("ref") or session.repo.default_branch),
        "state": PullRequest.State.OPEN, "draft": bool(answer.get("draft")), "pushed_sha": sha,
        "updated_at": timezone.now(),
    })
    return pull


def forget_token(user, credentials: Credentials) -> None:
    if not credentials.for_person:
        tokens.mark_broken(user)


def push_update(session: Session) -> tuple[PullRequest, branches.PushResult] | None:
    """A new hand-off of a session with an open pull request: push it there, with the opener's token, while
    they may still prompt in the session."""
    pull = session.pull_requests.filter(state=PullRequest.State.OPEN, opened_through_platform=True).first()
    if pull is None:
        return None
    try:
        if not session.can_prompt(pull.opened_by):
            raise CannotOpen("Whoever opened the pull request no longer prompts in the session: open it again.")
        credentials = credentials_for(pull.opened_by)
        pushed = push_branch(session, credentials)
    except CannotOpen as why:
        return pull, branches.PushResult(False, "", str(why))
    if pushed.ok:
        PullRequest.objects.filter(pk=pull.pk).update(pushed_sha=pushed.sha, updated_at=timezone.now())
    elif branches.refused_credentials(pushed.reason):
        forget_token(pull.opened_by, credentials)
        pushed = branches.PushResult(False, pushed.sha, tokens.connect_message(again=True))
    return pull, pushed
