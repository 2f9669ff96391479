"""Who may make an account while sign-up is closed: the decision, as a pure function."""


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower()


def refusal(email: str, invited_email: str | None, domains: list[str]) -> str:
    """Why an account with `email` may not be made, or "" when it may.

    `invited_email`: the address of the invitation the person holds ("" for one without an address, None for
    no invitation). `domains`: SIGNUP_EMAIL_DOMAINS, whose addresses may sign up without one."""
    email = email.strip().lower()
    if invited_email is not None:
        if invited_email and email != invited_email:
            return f"This invitation is for {invited_email}: sign up with that address."
        return ""
    if not domains:
        return "Sign-up is closed: ask an admin for an invitation."
    if not email:
        return "Give your email address: sign-up is open to addresses at " + ", ".join(domains) + "."
    if email_domain(email) not in domains:
        return "Sign-up is open only to addresses at " + ", ".join(domains) + ": ask an admin for an invitation."
    return ""
