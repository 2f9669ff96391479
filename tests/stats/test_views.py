"""The stats page's figures against a known history (tests/stats/conftest.py), per person and per repo, and what
it answers to bad input."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sessions.models import Session
from stats import figures
from tests.support.rows import login

pytestmark = pytest.mark.django_db
URL = reverse("stats")


def page(client, user, query: str = ""):
    return login(client, user).get(URL + query)


def test_the_figures_are_what_the_history_says_for_someone_who_may_use_one_repo(client, history, users):
    answer = page(client, users["ada"])
    assert answer.status_code == 200
    found = answer.context["figures"]
    # Ada may not use "secret": nothing of it is counted for her.
    assert found["sessions_total"] == 4 and found["sessions_recent"] == 3
    per_day = dict(zip(found["days"], found["sessions_per_day"], strict=True))
    assert len(per_day) == figures.DAYS and found["days"][-1] == history.today.isoformat()
    assert {day: n for day, n in per_day.items() if n} == {found["days"][-2]: 2, found["days"][-4]: 1}
    assert (found["opened_through_platform"], found["merged_through_platform"], found["merged_all"]) == (3, 2, 3)
    assert found["opened_per_day"][-1] == 3 and sum(found["opened_per_day"]) == 3
    assert found["merged_per_day"][-1] == 2 and sum(found["merged_per_day"]) == 2
    assert found["opened_per_week"][-1] == 3 and found["merged_per_week"][-1] == 2
    assert sum(found["opened_per_week"]) == 3 and len(found["weeks"]) == figures.WEEKS
    assert found["merged_rate"] == pytest.approx(2 / 3) and found["merged_share"] == pytest.approx(2 / 3)
    assert found["median_seconds_to_pull_request"] == pytest.approx(20 * 60)  # 10, 20 and 30 minutes
    names = {key: [(row["name"], row["count"]) for row in found[key]] for key in found if key.startswith("top_")}
    assert names == {"top_repos_by_sessions": [("app", 3)], "top_repos_by_merged": [("app", 2)],
                     "top_people_by_sessions": [("Ada", 2), ("bob", 1)], "top_people_by_merged": [("Ada", 2)]}
    html = answer.content.decode()
    for shown in ('id="merged-rate">67%<', 'id="merged-share">67%<', 'id="median-lead">20 min<',
                  'id="opened-total">3<', 'id="merged-total">2<', 'id="sessions-recent">3<'):
        assert shown in html
    assert "secret" not in html  # not even in the repo selector


def test_someone_with_both_repos_sees_both_and_each_alone(client, history, users):
    found = page(client, users["bob"]).context["figures"]
    assert (found["sessions_recent"], found["opened_through_platform"], found["merged_through_platform"],
            found["merged_all"]) == (5, 4, 3, 4)
    assert found["merged_rate"] == pytest.approx(3 / 4) and found["merged_share"] == pytest.approx(3 / 4)
    assert found["median_seconds_to_pull_request"] == pytest.approx(20 * 60)  # t1's PR has no prompt: not in it
    assert [(r["name"], r["count"]) for r in found["top_people_by_merged"]] == [("Ada", 2), ("bob", 1)]
    assert [(r["name"], r["count"]) for r in found["top_repos_by_sessions"]] == [("app", 3), ("secret", 2)]

    alone = page(client, users["bob"], f"?repo={history.secret.pk}")
    found = alone.context["figures"]
    assert (found["sessions_total"], found["opened_through_platform"], found["merged_through_platform"]) == (2, 1, 1)
    assert found["sessions_per_day"][-3] == 2 and found["median_seconds_to_pull_request"] is None
    assert f'<option value="{history.secret.pk}" selected>secret</option>' in alone.content.decode()

    app = page(client, users["bob"], f"?repo={history.app.pk}").context["figures"]
    assert (app["sessions_total"], app["opened_through_platform"], app["merged_all"]) == (4, 3, 3)


def test_who_sees_every_session_sees_every_repo(client, history, users):
    history.secret.allowed_users.clear()  # nobody may use it, yet root sees it
    found = page(client, users["root"]).context["figures"]
    assert (found["sessions_total"], found["opened_through_platform"], found["merged_through_platform"]) == (6, 4, 3)
    assert page(client, users["root"], f"?repo={history.secret.pk}").status_code == 200


def test_a_repo_someone_may_not_use_looks_the_same_as_an_unknown_one(client, history, users):
    foreign = page(client, users["ada"], f"?repo={history.secret.pk}")
    unknown = page(client, users["ada"], f"?repo={history.secret.pk + 1000}")
    huge = page(client, users["ada"], "?repo=" + "9" * 19)  # a number, beyond any id
    assert foreign.status_code == unknown.status_code == huge.status_code == 404
    assert foreign.content == unknown.content


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "1e3", "²", " 1", "0x1", "9" * 20, "1&repo=x"])
def test_a_malformed_repo_is_refused_with_what_it_should_be(client, users, value):
    answer = page(client, users["ada"], "?repo=" + value)
    assert answer.status_code == 400 and b"id" in answer.content


def test_an_empty_or_other_query_shows_every_repo(client, history, users):
    for query in ("?repo=", "?other=1", "?repo=&x=%00"):
        assert page(client, users["ada"], query).context["figures"]["sessions_total"] == 4


def test_signed_out_people_are_sent_to_sign_in(client, history):
    answer = client.get(URL)
    assert answer.status_code == 302 and answer["Location"].startswith(reverse("account_login"))


def test_the_figures_are_cached_for_a_while_per_set_of_repos(client, history, users):
    assert page(client, users["ada"]).context["figures"]["sessions_total"] == 4
    Session.objects.create(repo=history.app, creator=users["ada"])
    with CaptureQueriesContext(connection) as queries:
        again = page(client, users["ada"])
    assert again.context["figures"]["sessions_total"] == 4
    # Only the cache, the person, their repos and the live count are read: no pull request, no session counted.
    assert not [q["sql"] for q in queries if "pulls_pullrequest" in q["sql"] or "COUNT(" in q["sql"] and
                "agent_sessions_session" in q["sql"] and "agent_sessions_membership" not in q["sql"]]
    # Bob's set of repos is another key: his figures are his own, and current.
    assert page(client, users["bob"]).context["figures"]["sessions_total"] == 7


def test_the_nav_links_to_the_page(client, users):
    assert f'href="{URL}"' in login(client, users["ada"]).get("/").content.decode()


@pytest.mark.parametrize(("seconds", "text"), [(None, "–"), (20, "20 s"), (600, "10 min"), (3600, "1 h"),
                                               (3900, "1 h 5 min"), (86400 * 2 + 3600, "2 d 1 h")])
def test_durations_read_as_people_say_them(seconds, text):
    from stats.views import duration_text

    assert duration_text(seconds) == text
