"""The figures of the stats page, as plain functions over a Scope (which repos they cover). Each is one or two
aggregate queries, so the page stays fast with hundreds of thousands of rows (docs/stats.md)."""

import hashlib
import statistics
from collections.abc import Callable
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
    """Eight aggregate queries and two for names. Counts per day (and repo) are fetched once and summed here into
    the daily and weekly series and the top repos, rather than asked of the database again."""
    days = last_days(today, DAYS)
    since = day_start(days[0])
    weeks_from = today - timedelta(days=today.weekday(), weeks=WEEKS - 1)  # a Monday, before days[0]
    week_days = last_days(today, (today - weeks_from).days + 1)
    sessions = counted(scope.sessions().filter(created_at__gte=since), "created_at", "repo")
    opened_daily = counted(opened(scope).filter(created_at__gte=day_start(weeks_from)), "created_at")
    merged_daily = counted(merged(scope).filter(merged_at__gte=day_start(weeks_from)), "merged_at", "repo")
    totals = pull_totals(scope)
    return {
        "days": [d.isoformat() for d in days],
        "sessions_per_day": per_day(sessions, days),
        "opened_per_day": per_day(opened_daily, days),
        "merged_per_day": per_day(merged_daily, days),
        "weeks": [(weeks_from + timedelta(weeks=n)).isoformat() for n in range(WEEKS)],
        "opened_per_week": per_week(per_day(opened_daily, week_days)),
        "merged_per_week": per_week(per_day(merged_daily, week_days)),
        "sessions_total": scope.sessions().count(),
        "sessions_recent": sum(sessions.values()),
        **totals,
        "merged_rate": ratio(totals["merged_through_platform"], totals["opened_through_platform"]),
        "merged_share": ratio(totals["merged_through_platform"], totals["merged_all"]),
        "median_seconds_to_pull_request": median_seconds_to_pull_request(opened(scope).filter(created_at__gte=since)),
        "top_repos_by_sessions": named(by_key(sessions, days[0]), repo_names),
        "top_repos_by_merged": named(by_key(merged_daily, days[0]), repo_names),
        "top_people_by_sessions": top(scope.sessions().filter(created_at__gte=since), "creator", people_names),
        "top_people_by_merged": top(merged(scope).filter(merged_at__gte=since), "opened_by", people_names),
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


def counted(rows: QuerySet, when: str, by: str | None = None) -> dict[tuple[date, int | None], int]:
    """Rows per day of `when` (in TIME_ZONE), and per value of `by` if given: {(day, value): n}."""
    keys = ["day", by] if by else ["day"]
    found = rows.annotate(day=TruncDate(when)).values(*keys).annotate(n=Count("pk")).values_list(*keys, "n")
    return {(row[0], row[1] if by else None): row[-1] for row in found}


def per_day(counts: dict[tuple[date, int | None], int], days: list[date]) -> list[int]:
    """The counts of each of `days`, those without any as 0."""
    totals: dict[date, int] = {}
    for (day, _), n in counts.items():
        totals[day] = totals.get(day, 0) + n
    return [totals.get(day, 0) for day in days]


def per_week(daily: list[int]) -> list[int]:
    return [sum(daily[n:n + 7]) for n in range(0, len(daily), 7)]


def by_key(counts: dict[tuple[date, int | None], int], since: date) -> list[tuple[int, int]]:
    """The TOP values by count from `since` on, most first (ties by id)."""
    totals: dict[int, int] = {}
    for (day, key), n in counts.items():
        if day >= since and key is not None:
            totals[key] = totals.get(key, 0) + n
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:TOP]


class Median(Aggregate):
    """PostgreSQL's exact median (an interval's too)."""

    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"


def median_seconds_to_pull_request(pulls: QuerySet[PullRequest]) -> float | None:
    """The median time from a session's first prompt to the PR opened through the platform from it. Over a
    window: all time, it sorts every PR ever opened (93 ms with 15k of them)."""
    pulls = pulls.filter(session__prompts__position=1)
    lead = ExpressionWrapper(F("created_at") - F("session__prompts__created_at"), output_field=DurationField())
    if connection.vendor == "postgresql":
        found = pulls.aggregate(median=Median(lead, output_field=DurationField()))["median"]
        return found.total_seconds() if found is not None else None
    # SQLite has no percentile: few rows there, so the median is taken here.
    leads = [(made - asked).total_seconds()
             for made, asked in pulls.values_list("created_at", "session__prompts__created_at")]
    return statistics.median(leads) if leads else None


def top(rows: QuerySet, field: str, names: Callable[[list[int]], dict[int, str]]) -> list[dict]:
    """The TOP values of `field` by number of rows, most first (ties by id), with their names."""
    found = list(rows.exclude(**{f"{field}__isnull": True}).values(field).annotate(n=Count("pk"))
                 .order_by("-n", field).values_list(field, "n")[:TOP])
    return named(found, names)


def named(counts: list[tuple[int, int]], names: Callable[[list[int]], dict[int, str]]) -> list[dict]:
    found = names([pk for pk, _ in counts])
    return [{"id": pk, "name": found.get(pk, "?"), "count": n} for pk, n in counts]


def repo_names(ids: list[int]) -> dict[int, str]:
    return dict(Repo.objects.filter(pk__in=ids).values_list("pk", "name"))


def people_names(ids: list[int]) -> dict[int, str]:
    return {person.pk: person.get_full_name() or person.get_username()
            for person in get_user_model().objects.filter(pk__in=ids)}
