"""The figures of the stats page, as plain functions over a Scope (which repos they cover). Each is one or two
aggregate queries, so the page stays fast with hundreds of thousands of rows (docs/stats.md)."""

import hashlib
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from pulls.models import PullRequest
from sandboxes.models import Repo
from sessions.models import Session, sees_every_session

DAYS = 30  # the daily charts and the "top" lists
WEEKS = 12  # the weekly pull request chart
TOP = 5
# The heavy figures change slowly; the live count ("humans prompting now", stats/live.py) is never cached.
CACHE_SECONDS = 30
CACHE_VERSION = 1
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Scope:
    """The repos the figures cover: None for every repo (people who see every session), else these ids."""

    repo_ids: frozenset[int] | None

    def sessions(self) -> QuerySet[Session]:
        found = Session.objects.all()
        return found if self.repo_ids is None else found.filter(repo_id__in=self.repo_ids)

    def pulls(self) -> QuerySet[PullRequest]:
        found = PullRequest.objects.all()
        return found if self.repo_ids is None else found.filter(repo_id__in=self.repo_ids)

    def cache_key(self) -> str:
        ids = "all" if self.repo_ids is None else ",".join(map(str, sorted(self.repo_ids)))
        return "stats:" + hashlib.sha256(ids.encode()).hexdigest()


def visible_repos(user) -> QuerySet[Repo]:
    """The repos whose figures `user` may see: those they may use, or all with the see-every-session permission."""
    if sees_every_session(user):
        return Repo.objects.all()
    return Repo.objects.usable_by(user)


def scope_for(user, repo_id: int | None) -> Scope | None:
    """All of `user`'s repos (repo_id None), or that one repo; None when it is unknown or not theirs (the same)."""
    repos = visible_repos(user)
    if repo_id is None:
        return Scope(None) if sees_every_session(user) else Scope(frozenset(repos.values_list("pk", flat=True)))
    if not 0 < repo_id <= MAX_ID or not repos.filter(pk=repo_id).exists():
        return None
    return Scope(frozenset([repo_id]))


def parse_repo_id(value: str | None) -> int | None:
    """The repo selector's value: "" or absent means every repo; ValueError for anything but a plain id."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 19:  # "²" is a digit int() refuses
        raise ValueError("The repo is its id, a number.")
    return int(value)


# --- the heavy figures, cached ---------------------------------------------------------------------------

def figures(scope: Scope) -> dict:
    """Everything the page shows but the live count, for at most CACHE_SECONDS old, keyed by the set of repos."""
    today = timezone.localdate()
    key = f"{scope.cache_key()}:{today.isoformat()}"
    found = cache.get(key, version=CACHE_VERSION)
    if found is None:
        found = compute(scope, today)
        cache.set(key, found, CACHE_SECONDS, version=CACHE_VERSION)
    return found


def compute(scope: Scope, today: date) -> dict:
    start = day_start(today - timedelta(days=DAYS - 1))
    totals = pull_totals(scope)
    median = median_seconds_to_pull_request(scope)
    return {
        "days": [d.isoformat() for d in last_days(today, DAYS)],
        "sessions_per_day": per_day(scope.sessions().filter(created_at__gte=start), "created_at", today, DAYS),
        "opened_per_day": per_day(opened(scope).filter(created_at__gte=start), "created_at", today, DAYS),
        "merged_per_day": per_day(merged(scope).filter(merged_at__gte=start), "merged_at", today, DAYS),
        **weekly(scope, today),
        "sessions_total": scope.sessions().count(),
        "sessions_recent": scope.sessions().filter(created_at__gte=start).count(),
        **totals,
        "merged_rate": ratio(totals["merged_through_platform"], totals["opened_through_platform"]),
        "merged_share": ratio(totals["merged_through_platform"], totals["merged_all"]),
        "median_seconds_to_pull_request": median,
        "top_repos_by_sessions": top(scope.sessions().filter(created_at__gte=start), "repo", repo_names),
        "top_repos_by_merged": top(merged(scope).filter(merged_at__gte=start), "repo", repo_names),
        "top_people_by_sessions": top(scope.sessions().filter(created_at__gte=start), "creator", people_names),
        "top_people_by_merged": top(merged(scope).filter(merged_at__gte=start), "opened_by", people_names),
    }


def opened(scope: Scope) -> QuerySet[PullRequest]:
    return scope.pulls().filter(opened_through_platform=True)


def merged(scope: Scope) -> QuerySet[PullRequest]:
    return opened(scope).filter(state=PullRequest.State.MERGED)


def pull_totals(scope: Scope) -> dict[str, int]:
    """All-time counts in one pass: PRs opened and merged through the platform, and every merged PR (from the
    webhooks, whoever opened it), for the share."""
    ours, is_merged = Q(opened_through_platform=True), Q(state=PullRequest.State.MERGED)
    counted = scope.pulls().aggregate(
        opened=Count("pk", filter=ours), merged=Count("pk", filter=ours & is_merged),
        merged_all=Count("pk", filter=is_merged))
    return {"opened_through_platform": counted["opened"], "merged_through_platform": counted["merged"],
            "merged_all": counted["merged_all"]}


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def last_days(today: date, count: int) -> list[date]:
    return [today - timedelta(days=count - 1 - n) for n in range(count)]


def per_day(rows: QuerySet, field: str, today: date, count: int) -> list[int]:
    """Rows per day (in TIME_ZONE) over the `count` days up to today, days without any included as 0."""
    counted = dict(rows.annotate(day=TruncDate(field)).values("day").annotate(n=Count("pk")).values_list("day", "n"))
    return [counted.get(day, 0) for day in last_days(today, count)]


def weekly(scope: Scope, today: date) -> dict:
    """PRs opened and merged through the platform per week (Monday first) over the last WEEKS weeks, from daily
    counts: one query each, summed here."""
    monday = today - timedelta(days=today.weekday())
    first = monday - timedelta(weeks=WEEKS - 1)
    count = (today - first).days + 1
    opened_days = per_day(opened(scope).filter(created_at__gte=day_start(first)), "created_at", today, count)
    merged_days = per_day(merged(scope).filter(merged_at__gte=day_start(first)), "merged_at", today, count)
    return {
        "weeks": [(first + timedelta(weeks=n)).isoformat() for n in range(WEEKS)],
        "opened_per_week": [sum(opened_days[n * 7:n * 7 + 7]) for n in range(WEEKS)],
        "merged_per_week": [sum(merged_days[n * 7:n * 7 + 7]) for n in range(WEEKS)],
    }


class Median(Aggregate):
    """PostgreSQL's exact median (an interval's too)."""

    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"


def median_seconds_to_pull_request(scope: Scope) -> float | None:
    """The median time from a session's first prompt to the PR opened through the platform from it."""
    pulls = opened(scope).filter(session__prompts__position=1)
    lead = ExpressionWrapper(F("created_at") - F("session__prompts__created_at"), output_field=DurationField())
    if connection.vendor == "postgresql":
        found = pulls.aggregate(median=Median(lead, output_field=DurationField()))["median"]
        return found.total_seconds() if found is not None else None
    # SQLite has no percentile: few rows there, so the median is taken here.
    leads = [(made - asked).total_seconds()
             for made, asked in pulls.values_list("created_at", "session__prompts__created_at")]
    return statistics.median(leads) if leads else None


def top(rows: QuerySet, field: str, names) -> list[dict]:
    """The TOP values of `field` by number of rows, most first (ties by id), with their names."""
    counted = list(rows.exclude(**{f"{field}__isnull": True}).values(field).annotate(n=Count("pk"))
                   .order_by("-n", field).values_list(field, "n")[:TOP])
    named = names([pk for pk, _ in counted])
    return [{"id": pk, "name": named.get(pk, "?"), "count": n} for pk, n in counted]


def repo_names(ids: list[int]) -> dict[int, str]:
    return dict(Repo.objects.filter(pk__in=ids).values_list("pk", "name"))


def people_names(ids: list[int]) -> dict[int, str]:
    return {person.pk: person.get_full_name() or person.get_username()
            for person in get_user_model().objects.filter(pk__in=ids)}
