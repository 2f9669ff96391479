from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.core import context
from django import forms

from accounts.adapter import signup_refusal


class SignupForm(AllauthSignupForm):
    """allauth's form, refusing an address the sign-up rules do not let in (accounts/signup.py)."""

    def clean(self):
        cleaned = super().clean()
        refusal = signup_refusal(context.request, cleaned.get("email") or "")
        if refusal:
            raise forms.ValidationError(refusal)
        return cleaned
