"""Secrets out of build logs, in the forms a setup command may print them."""

import base64
from urllib.parse import quote

from sandboxes.redaction import Redactor

TOKEN = "npm_Ab3+/secret=value"
KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n"
       "AAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----")


def test_a_secret_is_masked_as_written_and_encoded():
    redact = Redactor({"NPM_TOKEN": TOKEN, "SHORT": "ab"})
    printed = [
        f"token is {TOKEN}",
        base64.b64encode(TOKEN.encode()).decode(),
        base64.b64encode((TOKEN + "\n").encode()).decode(),  # echo $NPM_TOKEN | base64
        base64.urlsafe_b64encode(TOKEN.encode()).decode().rstrip("="),
        TOKEN.encode().hex(),
        f"https://registry.example/?t={quote(TOKEN, safe='')}",
    ]
    for line in printed[1:]:
        assert redact(line).strip() in ("[secret]", "https://registry.example/?t=[secret]"), line  # all of it
    for line in printed:
        assert TOKEN not in redact(line) and "[secret]" in redact(line), line
    assert redact("a tab b") == "a tab b"  # a value too short to mask is left alone (SHORT = "ab")


def test_a_multi_line_secret_is_masked_line_by_line():
    redact = Redactor({"DEPLOY_KEY": KEY})
    for line in KEY.splitlines()[1:3]:
        assert redact(f"  {line}\n") == "  [secret]\n"
    assert redact("nothing secret here\n") == "nothing secret here\n"
