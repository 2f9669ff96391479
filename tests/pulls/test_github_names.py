"""A repo's GitHub owner/name, read from its clone URL for the GitHub that GITHUB_URL names."""

import pytest

from sandboxes.github_names import github_repo_from_clone_url
from sandboxes.models import Repo
from tests.support.rows import repo_with_image


@pytest.mark.parametrize("clone_url, github_url, expected", [
    ("https://github.com/acme/app.git", "https://github.com", "acme/app"),
    ("https://github.com/acme/app", "https://github.com", "acme/app"),
    ("git@github.com:acme/app.git", "https://github.com", "acme/app"),
    ("ssh://git@github.com/acme/my.app.git", "https://github.com", "acme/my.app"),
    ("https://ghe.example.com/team/svc.git", "https://ghe.example.com", "team/svc"),
    ("https://gitlab.com/acme/app.git", "https://github.com", ""),  # not on GitHub
    ("https://github.com/acme/app.git", "https://ghe.example.com", ""),  # not on *this* GitHub
    ("file:///srv/git/app.git", "https://github.com", ""),
    ("https://github.com/acme", "https://github.com", ""),  # no repository name
    ("https://github.com/acme/app/tree/main", "https://github.com", ""),
])
def test_owner_and_name_come_from_the_clone_url(clone_url, github_url, expected):
    assert github_repo_from_clone_url(clone_url, github_url) == expected


@pytest.mark.django_db
def test_a_repo_saved_without_one_gets_it_and_an_admin_may_set_another(settings):
    settings.GITHUB_URL = "https://github.com"
    repo = repo_with_image(clone_url="https://github.com/acme/app.git")
    assert repo.github_repo == "acme/app"
    repo.github_repo = "acme/renamed"
    repo.save()
    repo.refresh_from_db()
    assert repo.github_repo == "acme/renamed"  # kept: derived only when blank
    repo.clone_url = "https://github.com/acme/other.git"
    repo.save()
    assert Repo.objects.get(pk=repo.pk).github_repo == "acme/renamed"  # set by hand: kept


@pytest.mark.django_db
def test_a_derived_repository_follows_a_new_clone_url(settings):
    settings.GITHUB_URL = "https://github.com"
    repo = repo_with_image(clone_url="https://github.com/acme/app.git")
    repo.clone_url = "git@github.com:acme/moved.git"
    repo.save()
    assert Repo.objects.get(pk=repo.pk).github_repo == "acme/moved"

