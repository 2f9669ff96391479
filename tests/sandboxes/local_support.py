"""The local backend as its tests drive it: an image spec and a command that must succeed."""

from sandboxes.backends.base import ImageSpec


def spec(git_repo, name="img", setup=(), env=None, secrets=None, devcontainer=False) -> ImageSpec:
    return ImageSpec(
        name=name, clone_url=git_repo.url, branch="main", setup_commands=list(setup), start_commands=[],
        env=env or {}, use_devcontainer=devcontainer, build_secrets=secrets or {},
    )


def run(backend, ref, command, **kwargs) -> str:
    result = backend.exec(ref, command, **kwargs)
    assert result.exit_code == 0, result.output
    return result.output
