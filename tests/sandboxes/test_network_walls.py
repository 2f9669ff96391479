"""Each local sandbox and image build in a network of its own (sandboxes/backends/local_network.py), with
real pasta, nftables, Postgres and Redis: what a hostile sandbox can and cannot reach."""

import socket
import urllib.request

import pytest

from sandboxes.backends.base import BackendError, ImageSpec, StartRequest
from sandboxes.backends.local import LocalBackend
from tests.support.answering_server import AnsweringServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.sandbox

PREVIEW = 3000
# From inside a sandbox: "open" if a TCP connection to HOST:PORT succeeds within two seconds, else "closed".
PROBE = "timeout 2 bash -c 'echo > /dev/tcp/{host}/{port}' 2>/dev/null && echo open || echo closed"


def host_service(name: str) -> AnsweringServer:
    """An HTTP server on the host's loopback, answering its own name."""
    return AnsweringServer(lambda path: (name.encode(), "text/plain", []))


@pytest.fixture
def host_services():
    control_plane, other = host_service("control plane"), host_service("another host service")
    yield control_plane, other
    control_plane.stop()
    other.stop()


@pytest.fixture
def backend(sandbox_root) -> LocalBackend:
    return LocalBackend(sandbox_root)


def probe(backend: LocalBackend, ref: str, host: str, port: int) -> str:
    return backend.exec(ref, PROBE.format(host=host, port=port), timeout=10).output.strip()


def serve_preview(backend: LocalBackend, ref: str, text: str, port: int = PREVIEW) -> None:
    """The repo's dev server on its fixed port, inside the sandbox."""
    backend.exec(ref, f"mkdir -p /tmp/site && echo {text} > /tmp/site/index.html")
    backend.start_service(ref, "dev", f"exec python3 -m http.server {port} --bind 127.0.0.1 -d /tmp/site")


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode().strip()


def eventually_fetch(url: str) -> str:
    answers: list[str] = []

    def answered() -> bool:
        try:
            answers.append(fetch(url))
            return True
        except OSError:
            return False

    eventually(answered, timeout=15, what=f"{url} answers")
    return answers[-1]


def test_a_sandbox_reaches_the_control_plane_and_the_internet_but_nothing_else_of_the_host(
        backend, git_repo, host_services):
    control_plane, other = host_services
    # The build runs in a network of its own too: a setup command that reached the host's Postgres would
    # fail the build, one that fetches from the package registry must succeed.
    image = backend.build_image(ImageSpec(
        name="img", clone_url=git_repo.url, branch="main", start_commands=[], env={},
        setup_commands=[PROBE.format(host="127.0.0.1", port=5432) + " | grep -qx closed",
                        "curl -sf -o /dev/null https://pypi.org/simple/six/"],
    ), lambda line: None)
    url = f"http://127.0.0.1:{control_plane.port}"
    first = backend.start(StartRequest(sandbox_id="one", image_ref=image.ref, env={}, control_plane_url=url,
                                       ports=[PREVIEW]))
    second = backend.start(StartRequest(sandbox_id="two", image_ref=image.ref, env={}, control_plane_url=url,
                                        ports=[PREVIEW]))
    # Two sandboxes of one repo serve their previews on the same port, each its own.
    serve_preview(backend, first, "first")
    serve_preview(backend, second, "second")
    first_preview = backend.endpoints(first, [PREVIEW])[PREVIEW]
    second_preview = backend.endpoints(second, [PREVIEW])[PREVIEW]
    assert eventually_fetch(first_preview + "/") == "first"
    assert eventually_fetch(second_preview + "/") == "second"

    # The control plane, at the one address forwarded to the sandbox.
    answered = backend.exec(first, f"curl -sf {url}/", timeout=10)
    assert answered.output.strip() == "control plane"
    # Nothing else of the host: its Postgres, its Redis, another service on its loopback, the other
    # sandbox's forwarded preview port, and the cloud metadata address.
    second_port = int(second_preview.rsplit(":", 1)[1])
    for port in (5432, 6379, other.port, second_port):
        assert probe(backend, first, "127.0.0.1", port) == "closed", port
    assert probe(backend, first, "169.254.169.254", 80) == "closed"
    # Installing a package from the registry works.
    installed = backend.exec(first, "cd /tmp && npm pack --silent is-number@7.0.0", timeout=60)
    assert installed.exit_code == 0 and "is-number-7.0.0.tgz" in installed.output, installed.output
    # No firewall change from inside: the sandbox's processes hold no capability in its network.
    flushed = backend.exec(first, "nft flush ruleset", timeout=10)
    assert flushed.exit_code != 0
    assert probe(backend, first, "127.0.0.1", 5432) == "closed"


def test_a_port_not_forwarded_at_start_has_no_address(backend, git_repo):
    image = backend.build_image(ImageSpec(name="img", clone_url=git_repo.url, branch="main", setup_commands=[],
                                          start_commands=[], env={}), lambda line: None)
    ref = backend.start(StartRequest(sandbox_id="one", image_ref=image.ref, env={}, ports=[PREVIEW]))
    with pytest.raises(BackendError, match="does not forward port 5432"):
        backend.endpoints(ref, [5432])
    forwarded = int(backend.endpoints(ref, [PREVIEW])[PREVIEW].rsplit(":", 1)[1])
    backend.terminate(ref)
    # pasta goes with the sandbox: nothing listens on the forwarded port any more.
    eventually(lambda: not listening(forwarded), timeout=10, what="the forwarded port to close")


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_a_dev_server_may_listen_on_the_control_planes_port(backend, git_repo, host_services):
    # The platform's default port (8000) is many a dev server's: inside, the control plane moves aside.
    control_plane, _ = host_services
    image = backend.build_image(ImageSpec(name="img", clone_url=git_repo.url, branch="main", setup_commands=[],
                                          start_commands=[], env={}), lambda line: None)
    url = f"http://127.0.0.1:{control_plane.port}"
    ref = backend.start(StartRequest(sandbox_id="one", image_ref=image.ref, env={}, control_plane_url=url,
                                     ports=[control_plane.port]))
    inside = backend.control_plane_url(ref)
    assert inside.startswith("http://127.0.0.1:") and inside != url
    serve_preview(backend, ref, "app", port=control_plane.port)
    assert eventually_fetch(backend.endpoints(ref, [control_plane.port])[control_plane.port] + "/") == "app"
    assert backend.exec(ref, f"curl -sf {inside}/", timeout=10).output.strip() == "control plane"
    backend.terminate(ref)
