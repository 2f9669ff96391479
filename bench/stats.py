"""The stats page at scale: 100k sessions (each with its first prompt) and 20k pull requests in PostgreSQL, over
20 repos and 200 people across 180 days. GET /stats for every repo and for one, with the figures' cache emptied
before each request (the cold figure) and kept (warm); the floor, measured in the same run, is the session list
(`/`) of someone who sees every session. In-process (Django's test client): the view, its queries and its
template, no network. See docs/stats.md."""

import random
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone

from bench._common import goal, p50, report, say, spread, stopwatch
from bench._live import USER_PREFIX, delete_users, make_user
from pulls.models import PullRequest
from sandboxes.models import Repo
from sessions.models import Membership, Prompt, Session
from tests.support.rows import may_see_every_session

SESSIONS = 100_000
PULLS = 20_000
REPOS = 20
PEOPLE = 200
DAYS = 180
RUNS = 9  # after one uncounted request each
BATCH = 5_000
GOAL_MS = 150


def seed() -> list[Repo]:
    rng = random.Random(42)
    now = timezone.now()
    repos = Repo.objects.bulk_create([Repo(name=f"bench-stats-{n}", clone_url=f"https://example.com/s{n}.git")
                                      for n in range(REPOS)])
    people = User.objects.bulk_create([User(username=f"{USER_PREFIX}stats-{n}", password="!")
                                       for n in range(PEOPLE)])
    starts = sorted(now - timedelta(seconds=rng.uniform(0, DAYS * 86400)) for _ in range(SESSIONS))
    sessions = Session.objects.bulk_create(
        [Session(repo=rng.choice(repos), creator=rng.choice(people), created_at=at, last_activity_at=at,
                 status=Session.Status.IDLE) for at in starts], batch_size=BATCH)
    Prompt.objects.bulk_create(
        [Prompt(session=s, author_id=s.creator_id, text="Fix it", position=1, created_at=s.created_at,
                status=Prompt.Status.DONE) for s in sessions], batch_size=BATCH)
    pulls = []
    for number, session in enumerate(rng.sample(sessions, PULLS), start=1):
        created = session.created_at + timedelta(minutes=rng.uniform(5, 600))
        roll = rng.random()
        state = PullRequest.State.MERGED if roll < 0.55 else (
            PullRequest.State.CLOSED if roll < 0.65 else PullRequest.State.OPEN)
        ours = rng.random() < 0.75
        pulls.append(PullRequest(
            repo_id=session.repo_id, number=number, session=session if ours else None,
            opened_by_id=session.creator_id if ours else None, opened_through_platform=ours, state=state,
            created_at=created, updated_at=created,
            merged_at=created + timedelta(hours=rng.uniform(1, 72)) if state == PullRequest.State.MERGED else None))
    PullRequest.objects.bulk_create(pulls, batch_size=BATCH)
    # The planner's statistics and the visibility map (index-only counts), as autovacuum keeps them for tables
    # that grew over months.
    with connection.cursor() as cursor:
        for model in (Session, Prompt, PullRequest, Membership):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return repos


def remove(repos: list[Repo]) -> None:
    """Straight DELETEs: the ORM's cascade would collect 200k rows in Python first."""
    ids = [r.pk for r in repos]
    with connection.cursor() as cursor:
        for model, column in ((PullRequest, "repo_id"), (Prompt, "session_id"), (Membership, "session_id"),
                              (Session, "repo_id")):
            where = f"{column} = ANY(%s)" if column == "repo_id" else (
                f"{column} IN (SELECT id FROM {Session._meta.db_table} WHERE repo_id = ANY(%s))")
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE {where}", [ids])
    Repo.objects.filter(pk__in=ids).delete()
    delete_users()


def timed(client: Client, path: str, cold: bool) -> list[float]:
    samples = []
    for run in range(RUNS + 1):
        if cold:
            cache.clear()
        start = time.perf_counter()
        answer = client.get(path)
        elapsed = time.perf_counter() - start
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path} answered {answer.status_code}")
        if run:
            samples.append(elapsed)
    return samples


def run() -> None:
    if connection.vendor != "postgresql":
        say("skipped: the stats group seeds 100k sessions and needs DATABASE_URL to be PostgreSQL "
            "(e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench)")
        return
    with stopwatch() as seeding:
        repos = seed()
    say(f"seeded {SESSIONS:,} sessions with their first prompt and {PULLS:,} pull requests in {seeding():.1f} s")
    try:
        viewer, admin = make_user("stats-viewer"), may_see_every_session(make_user("stats-admin"))
        host = settings.ALLOWED_HOSTS[0].lstrip(".")
        page, floor = Client(HTTP_HOST=host), Client(HTTP_HOST=host)
        page.force_login(viewer)
        floor.force_login(admin)
        every = timed(page, "/stats", cold=True)
        one = timed(page, f"/stats?repo={repos[0].pk}", cold=True)
        warm = timed(page, "/stats", cold=False)
        home = timed(floor, "/", cold=False)
        report("stats_page_p50", p50(every) * 1000, "ms", 1)
        report("stats_page_repo_p50", p50(one) * 1000, "ms", 1)
        report("stats_page_cached_p50", p50(warm) * 1000, "ms", 1)
        report("session_list_p50", p50(home) * 1000, "ms", 1)
        report("stats_page_ratio", p50(every) / p50(home), "x", 2)
        say(f"/stats: {spread(every, 1000, 'ms')}; one repo: {spread(one, 1000, 'ms')}; "
            f"cached: {spread(warm, 1000, 'ms')}; the session list: {spread(home, 1000, 'ms')}")
        goal("stats page, every repo, cold cache", p50(every) * 1000, "ms", GOAL_MS)
        goal("stats page, one repo, cold cache", p50(one) * 1000, "ms", GOAL_MS)
    finally:
        remove(repos)
        cache.clear()
