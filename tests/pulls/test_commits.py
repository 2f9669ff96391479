"""Who a commit names, and the commit command a finished run sends the bridge."""

import pytest
from allauth.socialaccount.models import SocialAccount
from django.utils import timezone

from sessions.commits import co_author_ids, commit_spec, message_for, person
from sessions.models import Prompt
from tests.support.rows import owned_session


def test_co_authors_are_the_other_people_who_prompted_since_the_last_commit():
    # Ada planned (no commit), Bob asked a question (no commit), Ada's next run changes files.
    assert co_author_ids(1, [(1, False), (2, False)]) == [2]
    # A commit in between: only what came after it counts.
    assert co_author_ids(1, [(3, False), (2, True), (2, False), (4, False), (4, False)]) == [2, 4]
    assert co_author_ids(1, [(2, False), (1, True)]) == []
    assert co_author_ids(1, [(None, False), (1, False)]) == []  # a former member is nobody to credit
    assert co_author_ids(None, [(2, False)]) == [2]


def test_the_message_is_the_prompts_first_line_with_the_rest_below():
    assert message_for(Prompt(text="Add a health check\n\nIt answers 200 at /health.")) == \
        "Add a health check\n\nAdd a health check\n\nIt answers 200 at /health."
    assert message_for(Prompt(text="  Fix the typo  ")) == "Fix the typo"
    long = "x" * 100
    subject = message_for(Prompt(text=long)).splitlines()[0]
    assert len(subject) == 72 and subject.endswith("...")


def ran(session, author, text, position, commit_sha=""):
    return Prompt.objects.create(session=session, author=author, text=text, position=position,
                                 status=Prompt.Status.DONE, started_at=timezone.now(), commit_sha=commit_sha)


@pytest.mark.django_db
def test_a_finished_run_names_its_author_and_the_members_who_shaped_it(repo, user, other_user):
    user.first_name, user.last_name = "Ada", "Lovelace"
    user.save()
    SocialAccount.objects.create(user=other_user, provider="github", uid="42", extra_data={"login": "bobby"})
    session = owned_session(repo, user)
    ran(session, user, "first change", 1, commit_sha="abc")
    ran(session, other_user, "Plan how to add caching", 2)
    Prompt.objects.create(session=session, author=other_user, text="never ran", position=3,
                          status=Prompt.Status.CANCELLED)
    last = ran(session, user, "Now do it", 4)
    assert commit_spec(session, last) == {
        "branch": f"inspect/{session.pk}",
        "author": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "co_authors": [{"name": "bob", "email": "42+bobby@users.noreply.github.com"}],
        "message": "Now do it",
    }


@pytest.mark.django_db
def test_on_an_enterprise_server_the_no_reply_address_is_that_servers(user, settings):
    settings.GITHUB_URL = "https://ghe.example.com"
    SocialAccount.objects.create(user=user, provider="github", uid="7", extra_data={"login": "ada"})
    user.first_name = "Ada <root>\r\n"
    assert person(user) == {"name": "Ada root", "email": "7+ada@users.noreply.ghe.example.com"}
