"""A double of GitHub as an Enterprise Server serves it, on the host's loopback: web sign-in and OAuth at `url`,
the REST API under `url + "/api/v3"`, git over smart HTTP at `url + "/<owner>/<name>.git"`. It answers what the
tests need of it in GitHub's own wire formats (bodies, status codes, headers), so that the code under test meets
GitHub's answers, refusals and failures without the network."""

import base64
import copy
import hashlib
import hmac
import itertools
import json
import re
import secrets
import shutil
import string
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.support import github_git

DOCS = "https://docs.github.com/rest"
BAD_CREDENTIALS = {"message": "Bad credentials", "documentation_url": DOCS}
NOT_FOUND = {"message": "Not Found", "documentation_url": DOCS, "status": "404"}
CREATE_PULL_DOCS = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"
UPDATE_PULL_DOCS = "https://docs.github.com/rest/pulls/pulls#update-a-pull-request"
OAUTH_ERRORS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"
OAUTH_ERROR_TEXT = {
    "bad_verification_code": ("The code passed is incorrect or expired.", OAUTH_ERRORS + "#bad-verification-code"),
    "incorrect_client_credentials": ("The client_id and/or client_secret passed are incorrect.",
                                     OAUTH_ERRORS + "#incorrect-client-credentials"),
    "redirect_uri_mismatch": ("The redirect_uri MUST match the registered callback URL for this application.",
                              OAUTH_ERRORS + "#redirect-uri-mismatch2"),
    "bad_refresh_token": ("The refresh token passed is incorrect or expired.",
                          "https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/"
                          "refreshing-user-access-tokens"),
}
REVIEW_STATES = ("approved", "changes_requested", "commented")
UNPARSABLE = object()  # a request body that is not JSON: GitHub answers 400, once the token is known good


def sign(body: bytes, secret: str) -> str:
    """The X-Hub-Signature-256 header GitHub sends with a webhook delivery of `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_token(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))


def node_id(kind: str, number: int) -> str:
    return f"{kind}_" + base64.urlsafe_b64encode(f"{kind}{number}".encode()).decode().rstrip("=")


def api_token(authorization: str) -> str | None:
    """GitHub takes `Bearer <t>`, `token <t>` and Basic with the token as password alike."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() in ("bearer", "token"):
        return value.strip() or None
    return github_git.token_of_basic(authorization)


class Answer(Exception):
    """Raised anywhere while handling an API call to answer with this at once, as a 404 cuts a request short."""

    def __init__(self, status: int, body, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def invalid(documentation_url: str, *errors: dict) -> Answer:
    return Answer(422, {"message": "Validation Failed", "errors": list(errors), "documentation_url": documentation_url,
                        "status": "422"})


class GitHubDouble:
    def __init__(self):
        self.client_id, self.client_secret = "double-client-id", "double-client-secret"
        self.sign_in_as: str | None = None  # who is signed in to the double's web pages, for OAuth
        self.expiring_tokens = False  # True: tokens as a GitHub App's user-to-server ones (expiring, refreshable)
        self.users: dict[str, dict] = {}  # login -> {"id", "name", "emails": [(email, verified, primary, visibility)]}
        self.tokens: dict[str, str] = {}  # live token -> login
        self.scopes: dict[str, str] = {}  # token -> the scopes granted, as GitHub lists them ("read:org,user:email")
        self.refresh_tokens: dict[str, tuple[str, str]] = {}  # live refresh token -> (login, its access token)
        self.codes: dict[str, dict] = {}  # unused authorization code -> what it was granted for
        self.memberships: dict[str, dict[str, str]] = {}  # token or login -> {org (lower case): "active" | "pending"}
        self.repos: dict[str, dict] = {}  # "owner/name" -> {"id", "path", "default_branch", "collaborators", ...}
        self.pulls: dict[str, dict[int, dict]] = {}  # "owner/name" -> number -> pull request, as the API shows it
        self.requests: list[tuple[str, str]] = []  # each API call: (path, Authorization header)
        self.api_calls: list[dict] = []  # each API call: {"method", "path", "authorization", "body"}
        self.token_requests: list[dict] = []  # each form posted to /login/oauth/access_token
        self.authorizations: list[dict] = []  # each query of /login/oauth/authorize
        self.git_requests: list[tuple[str, str, str]] = []  # each git request: (method, path, Authorization header)
        self._failures: list[tuple[str, str, Answer]] = []
        self._ids = itertools.count(1001)
        self._owner_ids: dict[str, int] = {}
        self._used: dict[str, int] = {}  # token -> API calls made with it, for the X-RateLimit-* headers
        self._reset = int(time.time()) + 3600
        self._lock = threading.RLock()  # the handler threads and the test share all of the above
        self._root = Path(tempfile.mkdtemp(prefix="github-double-"))
        self._root.chmod(0o711)  # a sandbox may read a repository through a file:// mirror of it
        self._stopped = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.double = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.api_url = self.url + "/api/v3"
        # A short poll interval: stop() waits up to one interval for the serving thread.
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    # People and tokens

    def add_user(self, login: str, user_id: int, name: str | None = None, emails=()) -> None:
        """emails: (email, verified, primary) or (email, verified, primary, visibility); the primary one is
        public unless told otherwise, and then shows as the user's `email`."""
        listed = [(e[0], e[1], e[2], e[3] if len(e) > 3 else ("public" if e[2] else None)) for e in emails]
        with self._lock:
            self.users[login] = {"id": user_id, "name": name, "emails": listed}

    def issue_token(self, login: str, scope: str = "") -> str:
        assert login in self.users, f"add_user({login!r}, ...) first"
        with self._lock:
            return self._issue(login, scope, "gho_")["access_token"]

    def revoke(self, token: str) -> None:
        with self._lock:
            self.tokens.pop(token, None)
            self.memberships.pop(token, None)

    def fail_next(self, method: str, path_prefix: str, status: int, body, headers: dict[str, str] | None = None):
        """The next API call with this method whose path (with or without /api/v3) starts so gets this answer."""
        with self._lock:
            self._failures.append((method.upper(), path_prefix, Answer(status, body, headers)))

    # Repositories and pull requests

    def add_repo(self, full_name: str, default_branch: str = "main", collaborators=(), public: bool = False) -> Path:
        """`public`: anybody may clone it without a token (as the platform's image builds do); pushes always
        need a collaborator's token."""
        path = self._root / "repos" / f"{full_name}.git"
        github_git.create_bare(path, default_branch)
        with self._lock:
            self.repos[full_name] = {"id": next(self._ids), "path": path, "default_branch": default_branch,
                                     "collaborators": set(collaborators), "protected": set(), "public": public}
            self.pulls[full_name] = {}
        return path

    def repo_path(self, full_name: str) -> Path:
        return self._repo(full_name)["path"]

    def protect(self, full_name: str, branch: str) -> None:
        repo = self._repo(full_name)
        repo["protected"].add(branch)
        github_git.write_protection_hook(repo["path"], repo["protected"])

    def merge(self, full_name: str, number: int, by: str | None = None) -> dict:
        """Marks the pull request merged, as its merge button would (the git history is left as it is)."""
        with self._lock:
            pull = self._pull(full_name, number)
            self._refresh(self._repo_name(full_name), pull)
            pull.update(state="closed", merged=True, merged_at=now(), closed_at=now(), updated_at=now(),
                        merge_commit_sha=pull["head"]["sha"], merged_by=self._account(by or pull["user"]["login"]))
            return copy.deepcopy(pull)

    # Webhook bodies (the test posts them itself, signed with sign())

    def pull_request_payload(self, full_name: str, number: int, action: str, sender_login: str | None = None) -> dict:
        with self._lock:
            full_name = self._repo_name(full_name)
            pull = self._pull_object(full_name, number)
            return {"action": action, "number": number, "pull_request": pull,
                    "repository": self._repo_object(full_name),
                    "sender": self._account(sender_login or pull["user"]["login"])}

    def review_payload(self, full_name: str, number: int, state: str, reviewer_login: str) -> dict:
        assert state in REVIEW_STATES, state
        with self._lock:
            full_name = self._repo_name(full_name)
            pull = self._pull_object(full_name, number)
            review_id = next(self._ids)
            review = {"id": review_id, "node_id": node_id("PRR", review_id), "user": self._account(reviewer_login),
                      "body": None, "commit_id": pull["head"]["sha"], "submitted_at": now(), "state": state,
                      "html_url": f"{pull['html_url']}#pullrequestreview-{review_id}",
                      "pull_request_url": pull["url"], "author_association": "COLLABORATOR"}
            return {"action": "submitted", "review": review, "pull_request": pull,
                    "repository": self._repo_object(full_name), "sender": self._account(reviewer_login)}

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.server.shutdown()
            self.server.server_close()
            shutil.rmtree(self._root, ignore_errors=True)

    # What the handler asks

    def api(self, method: str, target: str, headers, raw: bytes) -> tuple[int, object, dict[str, str]]:
        authorization = headers.get("Authorization", "")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = UNPARSABLE
        token = api_token(authorization)
        with self._lock:
            self.requests.append((target, authorization))
            self.api_calls.append({"method": method, "path": target, "authorization": authorization,
                                   "body": None if body is UNPARSABLE else body})
            self._used[token or ""] = self._used.get(token or "", 0) + 1
            try:
                self._injected(method, target)
                status, answer = self._answer(method, urlsplit(target), token, body)
                extra = {}
            except Answer as cut_short:
                status, answer, extra = cut_short.status, cut_short.body, cut_short.headers
            limit = 5000 if token in self.tokens or token in self.memberships else 60
            used = self._used[token or ""]
            headers = {"X-GitHub-Media-Type": "github.v3; format=json", "X-GitHub-Api-Version-Selected": "2022-11-28",
                       "X-GitHub-Request-Id": ":".join(secrets.token_hex(n).upper() for n in (2, 2, 4, 4, 4)),
                       "X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(limit - used, 0)),
                       "X-RateLimit-Reset": str(self._reset), "X-RateLimit-Used": str(used),
                       "X-RateLimit-Resource": "core"}
            if token in self.scopes:
                headers["X-OAuth-Scopes"] = self.scopes[token].replace(",", ", ")
            return status, answer, {**headers, **extra}

    def authorize(self, query: str) -> tuple[int, dict[str, str], str]:
        params = dict(parse_qsl(query))
        with self._lock:
            self.authorizations.append(params)
            if params.get("client_id") != self.client_id:
                return 404, {}, "<h1>Not Found</h1>"
            if self.sign_in_as not in self.users:
                return 403, {}, "<h1>Nobody is signed in to the GitHub double (set sign_in_as)</h1>"
            if not params.get("redirect_uri"):
                return 400, {}, "<h1>The GitHub double needs a redirect_uri</h1>"
            code = secrets.token_hex(10)
            scope = ",".join(s for s in re.split(r"[ ,]+", params.get("scope", "")) if s)
            self.codes[code] = {"login": self.sign_in_as, "redirect_uri": params["redirect_uri"], "scope": scope,
                                "code_challenge": params.get("code_challenge")}
        back = {"code": code, **({"state": params["state"]} if "state" in params else {})}
        separator = "&" if "?" in params["redirect_uri"] else "?"
        return 302, {"Location": params["redirect_uri"] + separator + urlencode(back)}, "<h1>Redirecting</h1>"

    def access_token(self, headers, raw: bytes) -> dict:
        """The answer of POST /login/oauth/access_token: always a 200, errors included, as GitHub's."""
        if headers.get("Content-Type", "").startswith("application/json"):
            form = {k: str(v) for k, v in json.loads(raw or b"{}").items()}
        else:
            form = dict(parse_qsl(raw.decode()))
        client = github_git.basic_credentials(headers.get("Authorization", ""))  # client id and secret, perhaps
        if client:
            form.setdefault("client_id", client[0])
            form.setdefault("client_secret", client[1])
        with self._lock:
            self.token_requests.append(form)
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
                return self._oauth_error("incorrect_client_credentials")
            if form.get("grant_type") == "refresh_token":
                login, old_token = self.refresh_tokens.pop(form.get("refresh_token", ""), (None, None))
                if login is None:
                    return self._oauth_error("bad_refresh_token")
                self.tokens.pop(old_token, None)
                return self._issue(login, self.scopes.pop(old_token, ""), "ghu_")
            grant = self.codes.pop(form.get("code", ""), None)
            if grant is None:
                return self._oauth_error("bad_verification_code")
            if form.get("redirect_uri", grant["redirect_uri"]) != grant["redirect_uri"]:
                return self._oauth_error("redirect_uri_mismatch")
            if grant["code_challenge"] and grant["code_challenge"] != base64.urlsafe_b64encode(
                    hashlib.sha256(form.get("code_verifier", "").encode()).digest()).decode().rstrip("="):
                return self._oauth_error("bad_verification_code")
            return self._issue(grant["login"], grant["scope"], "ghu_" if self.expiring_tokens else "gho_")

    def git_access(self, method: str, target: str, authorization: str) -> tuple[str, Path, str] | None:
        """(login, project root, PATH_INFO) when the request may reach the repository, else None (a 401)."""
        match = re.fullmatch(r"/([^/]+)/([^/]+?)\.git(/.*)", urlsplit(target).path)
        with self._lock:
            self.git_requests.append((method, target, authorization))
            login = self.tokens.get(github_git.token_of_basic(authorization) or "")
            repo = match and self.repos.get(f"{match[1]}/{match[2]}")
            pushing = "git-receive-pack" in target
            if repo and repo["public"] and not pushing and not authorization:
                return "", self._root / "repos", f"/{match[1]}/{match[2]}.git{match[3]}"
            if login is None or not repo or login not in repo["collaborators"]:
                return None
            return login, self._root / "repos", f"/{match[1]}/{match[2]}.git{match[3]}"

    # Inside

    def _issue(self, login: str, scope: str, prefix: str) -> dict:
        token = new_token(prefix)
        self.tokens[token], self.scopes[token] = login, scope
        answer = {"access_token": token, "token_type": "bearer", "scope": "" if prefix == "ghu_" else scope}
        if prefix == "ghu_":  # a GitHub App's user-to-server token: 8 hours, refreshable for 6 months
            refresh = new_token("ghr_")
            self.refresh_tokens[refresh] = (login, token)
            answer.update(expires_in=28800, refresh_token=refresh, refresh_token_expires_in=15897600)
        return answer

    def _oauth_error(self, error: str) -> dict:
        description, uri = OAUTH_ERROR_TEXT[error]
        return {"error": error, "error_description": description, "error_uri": uri}

    def _injected(self, method: str, target: str) -> None:
        for failure in self._failures:
            wanted_method, prefix, answer = failure
            if wanted_method == method and (target.startswith(prefix) or target.startswith("/api/v3" + prefix)):
                self._failures.remove(failure)
                raise answer

    def _answer(self, method: str, url, token: str | None, body) -> tuple[int, object]:
        login = self.tokens.get(token or "")
        if login is None and token not in self.memberships:
            raise Answer(401, BAD_CREDENTIALS)
        if body is UNPARSABLE:
            raise Answer(400, {"message": "Problems parsing JSON", "documentation_url": DOCS, "status": "400"})
        path, query = url.path.removeprefix("/api/v3"), dict(parse_qsl(url.query))
        if method == "GET" and (org := re.fullmatch(r"/user/memberships/orgs/([^/]+)", path)):
            state = (self.memberships.get(token) or self.memberships.get(login or "", {})).get(org[1].lower())
            if state is None:
                raise Answer(404, NOT_FOUND)
            return 200, {"url": f"{self.api_url}/orgs/{org[1].lower()}/memberships/{login}", "state": state,
                         "role": "member", "organization_url": f"{self.api_url}/orgs/{org[1].lower()}",
                         "organization": {"login": org[1].lower()}}
        if login is None:  # a token the test gave only org memberships: it is nobody else
            raise Answer(401, BAD_CREDENTIALS)
        if method == "GET" and path == "/user":
            return 200, self._user_object(login)
        if method == "GET" and path == "/user/emails":
            return 200, [{"email": e, "primary": p, "verified": v, "visibility": vis}
                         for e, v, p, vis in self.users[login]["emails"]]
        repo = re.fullmatch(r"/repos/([^/]+/[^/]+)(/pulls(?:/(\d+))?)?", path)
        if not repo:
            raise Answer(404, NOT_FOUND)
        full_name = self._visible(repo[1], login)
        if method == "GET" and not repo[2]:
            return 200, self._repo_object(full_name)
        if method == "POST" and repo[2] and not repo[3]:
            return 201, self._create_pull(full_name, login, body if isinstance(body, dict) else {})
        if method == "GET" and repo[2] and not repo[3]:
            return 200, self._list_pulls(full_name, query)
        if method in ("GET", "PATCH") and repo[3]:
            if int(repo[3]) not in self.pulls[full_name]:
                raise Answer(404, NOT_FOUND)
            if method == "PATCH":
                self._update_pull(full_name, int(repo[3]), body if isinstance(body, dict) else {})
            return 200, self._pull_object(full_name, int(repo[3]))
        raise Answer(404, NOT_FOUND)

    def _visible(self, full_name: str, login: str) -> str:
        """The repository's own spelling of its name; 404 for whom is no collaborator, as for a private one."""
        for name, repo in self.repos.items():
            if name.lower() == full_name.lower() and login in repo["collaborators"]:
                return name
        raise Answer(404, NOT_FOUND)

    def _create_pull(self, full_name: str, login: str, body: dict) -> dict:
        repo, owner = self.repos[full_name], full_name.split("/")[0]
        missing = [{"resource": "PullRequest", "field": f, "code": "missing_field"}
                   for f in ("title", "head", "base") if not body.get(f)]
        if missing:
            raise invalid(CREATE_PULL_DOCS, *missing)
        head_owner, _, branch = str(body["head"]).rpartition(":")
        head_sha = github_git.branch_sha(repo["path"], branch)
        if head_sha is None or (head_owner and head_owner.lower() != owner.lower()):  # no forks in the double
            raise invalid(CREATE_PULL_DOCS, {"resource": "PullRequest", "field": "head", "code": "invalid"})
        base_sha = github_git.branch_sha(repo["path"], body["base"])
        if base_sha is None:
            raise invalid(CREATE_PULL_DOCS, {"resource": "PullRequest", "field": "base", "code": "invalid"})
        if any(p["state"] == "open" and p["head"]["ref"] == branch and p["base"]["ref"] == body["base"]
               for p in self.pulls[full_name].values()):
            raise invalid(CREATE_PULL_DOCS, {"resource": "PullRequest", "code": "custom",
                                             "message": f"A pull request already exists for {owner}:{branch}."})
        commits = github_git.commits_between(repo["path"], base_sha, head_sha)
        if commits == 0:
            raise invalid(CREATE_PULL_DOCS, {"resource": "PullRequest", "code": "custom",
                                             "message": f"No commits between {body['base']} and {branch}"})
        number, pull_id = len(self.pulls[full_name]) + 1, next(self._ids)
        html_url, api_url = f"{self.url}/{full_name}/pull/{number}", f"{self.api_url}/repos/{full_name}/pulls/{number}"
        self.pulls[full_name][number] = {
            "url": api_url, "id": pull_id, "node_id": node_id("PR", pull_id), "html_url": html_url,
            "diff_url": html_url + ".diff", "patch_url": html_url + ".patch",
            "issue_url": f"{self.api_url}/repos/{full_name}/issues/{number}", "number": number, "state": "open",
            "locked": False, "title": body["title"], "user": self._account(login), "body": body.get("body"),
            "created_at": now(), "updated_at": now(), "closed_at": None, "merged_at": None,
            "merge_commit_sha": None, "draft": bool(body.get("draft", False)),
            "head": self._end(full_name, branch, head_sha), "base": self._end(full_name, body["base"], base_sha),
            "author_association": "OWNER" if login == owner else "COLLABORATOR", "merged": False,
            "mergeable": None, "merged_by": None, "comments": 0, "review_comments": 0, "commits": commits}
        return self._pull_object(full_name, number)

    def _update_pull(self, full_name: str, number: int, body: dict) -> None:
        pull = self.pulls[full_name][number]
        if body.get("state") not in (None, "open", "closed") or (body.get("state") == "open" and pull["merged"]):
            raise invalid(UPDATE_PULL_DOCS, {"resource": "PullRequest", "field": "state", "code": "invalid"})
        if "base" in body:
            sha = github_git.branch_sha(self.repos[full_name]["path"], str(body["base"]))
            if sha is None:
                raise invalid(UPDATE_PULL_DOCS, {"resource": "PullRequest", "field": "base", "code": "invalid"})
            pull["base"] = self._end(full_name, body["base"], sha)
        for key in ("title", "body"):
            if key in body:
                pull[key] = body[key]
        if body.get("state") and body["state"] != pull["state"]:
            pull.update(state=body["state"], closed_at=now() if body["state"] == "closed" else None)
        pull["updated_at"] = now()

    def _list_pulls(self, full_name: str, query: dict) -> list[dict]:
        state = query.get("state", "open")
        return [self._pull_object(full_name, n) for n, p in sorted(self.pulls[full_name].items(), reverse=True)
                if state in ("all", p["state"]) and query.get("head", p["head"]["label"]).lower() ==
                p["head"]["label"].lower() and query.get("base", p["base"]["ref"]) == p["base"]["ref"]]

    def _pull(self, full_name: str, number: int) -> dict:
        return self.pulls[self._repo_name(full_name)][number]

    def _pull_object(self, full_name: str, number: int) -> dict:
        """A copy, as of now: an open pull request follows what was pushed to its branches."""
        pull = self._pull(full_name, number)
        self._refresh(self._repo_name(full_name), pull)
        return copy.deepcopy(pull)

    def _refresh(self, full_name: str, pull: dict) -> None:
        if pull["state"] == "open":
            for end in ("head", "base"):
                pull[end]["sha"] = github_git.branch_sha(self.repos[full_name]["path"], pull[end]["ref"]) or \
                    pull[end]["sha"]

    def _end(self, full_name: str, ref: str, sha: str) -> dict:
        owner = full_name.split("/")[0]
        return {"label": f"{owner}:{ref}", "ref": ref, "sha": sha, "user": self._account(owner),
                "repo": self._repo_object(full_name)}

    def _repo_name(self, full_name: str) -> str:
        return next((name for name in self.repos if name.lower() == full_name.lower()), full_name)

    def _repo(self, full_name: str) -> dict:
        return self.repos[self._repo_name(full_name)]

    def _repo_object(self, full_name: str) -> dict:
        repo = self._repo(full_name)
        owner, name = full_name.split("/")
        return {"id": repo["id"], "node_id": node_id("R", repo["id"]), "name": name, "full_name": full_name,
                "private": True, "owner": self._account(owner), "html_url": f"{self.url}/{full_name}",
                "description": None, "fork": False, "url": f"{self.api_url}/repos/{full_name}",
                "clone_url": f"{self.url}/{full_name}.git", "default_branch": repo["default_branch"],
                "visibility": "private"}

    def _account(self, login: str) -> dict:
        """The short form of a user (or, for an owner the test never added, an organisation) in other objects."""
        user = self.users.get(login)
        account_id = user["id"] if user else self._owner_ids.setdefault(login, next(self._ids))
        return {"login": login, "id": account_id, "node_id": node_id("U" if user else "O", account_id),
                "avatar_url": f"{self.url}/avatars/u/{account_id}", "gravatar_id": "",
                "url": f"{self.api_url}/users/{login}", "html_url": f"{self.url}/{login}",
                "type": "User" if user else "Organization", "site_admin": False}

    def _user_object(self, login: str) -> dict:
        public = [e for e, _, primary, visibility in self.users[login]["emails"] if primary and visibility == "public"]
        return {**self._account(login), "name": self.users[login]["name"], "company": None, "blog": "",
                "location": None, "email": public[0] if public else None, "hireable": None, "bio": None,
                "twitter_username": None, "public_repos": 0, "public_gists": 0, "followers": 0, "following": 0,
                "created_at": "2020-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}


class _Handler(BaseHTTPRequestHandler):
    server_version, sys_version = "GitHub.com", ""  # GitHub's Server header

    def route(self) -> None:
        double: GitHubDouble = self.server.double
        path, body = urlsplit(self.path).path, self.read_body()
        if path.startswith("/api/v3/"):
            status, answer, headers = double.api(self.command, self.path, self.headers, body)
            data = b"" if answer is None else json.dumps(answer).encode()
            return self.send(status, {"Content-Type": "application/json; charset=utf-8", **headers}, data)
        if path == "/login/oauth/authorize" and self.command == "GET":
            status, headers, page = double.authorize(urlsplit(self.path).query)
            return self.send(status, {"Content-Type": "text/html; charset=utf-8", **headers}, page.encode())
        if path == "/login/oauth/access_token" and self.command == "POST":
            answer = double.access_token(self.headers, body)
            if "application/json" in self.headers.get("Accept", ""):
                return self.send(200, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(answer).encode())
            return self.send(200, {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                             urlencode(answer).encode())
        if re.fullmatch(r"/[^/]+/[^/]+\.git/.*", path):
            access = double.git_access(self.command, self.path, self.headers.get("Authorization", ""))
            if access is None:
                return self.send(401, {"WWW-Authenticate": 'Basic realm="GitHub"', "Content-Type": "text/plain"},
                                 b"Invalid username or token. Password authentication is not supported for Git "
                                 b"operations.\n")
            login, root, path_info = access
            status, headers, data = github_git.http_backend(root, self.command, path_info, urlsplit(self.path).query,
                                                            self.headers, body, login)
            return self.send(status, dict(headers), data)
        return self.send(404, {"Content-Type": "text/html; charset=utf-8"}, b"<h1>Not Found</h1>")

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = route

    def read_body(self) -> bytes:
        """The whole request body, read before answering: git sends large pushes chunked."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers, up to the blank line
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, *args):
        pass
