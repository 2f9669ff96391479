"""Secrets taken out of build logs: as written, line by line when they span lines, and in the encodings a
command is likely to print them in (base64, hex, URL-encoded), so `echo $TOKEN | base64` hides nothing."""

import base64
from urllib.parse import quote

MIN_LENGTH = 4  # shorter values would blank out ordinary words
MASK = "[secret]"


def variants(secret: str) -> set[str]:
    """Every form of `secret` to hide: itself, each of its lines (a key file's), and its encodings."""
    forms = {secret}
    forms.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= 2 * MIN_LENGTH)
    for raw in (secret.encode(), (secret + "\n").encode()):  # `echo` adds a newline before encoding
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            forms.add(encoded.decode())
            forms.add(encoded.decode().rstrip("="))
        forms.add(raw.hex())
    forms.add(quote(secret, safe=""))
    return {form for form in forms if len(form) >= MIN_LENGTH}


class Redactor:
    def __init__(self, secrets: dict[str, str]):
        # Longest first, so a secret's longer encoding is masked whole before a shorter form inside it.
        self.forms = sorted({form for value in secrets.values() if len(value) >= MIN_LENGTH
                             for form in variants(value)}, key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for form in self.forms:
            if form in line:
                line = line.replace(form, MASK)
        return line
