"""Admin forms for repos and their secrets."""

from typing import Any

from django import forms

from sandboxes.models import Repo, RepoSecret

MONOSPACE = {"class": "vLargeTextField monospace", "rows": 6, "spellcheck": "false"}


class RepoForm(forms.ModelForm):
    class Meta:
        model = Repo
        fields = [
            "name",
            "clone_url",
            "default_branch",
            "environment_source",
            "setup_commands",
            "start_commands",
            "preview_ports",
            "env_vars",
            "warm_pool_size",
            "rebuild_interval_minutes",
            "access",
            "allowed_users",
            "allowed_groups",
        ]
        widgets = {
            "clone_url": forms.TextInput(attrs={"class": "vLargeTextField", "spellcheck": "false"}),
            "setup_commands": forms.Textarea(attrs=MONOSPACE),
            "start_commands": forms.Textarea(attrs=MONOSPACE),
            "env_vars": forms.Textarea(attrs={**MONOSPACE, "rows": 4}),
        }
        help_texts = {
            "env_vars": 'A JSON object of strings, e.g. {"NODE_ENV": "test"}. Not secret: put tokens in secrets.',
            "warm_pool_size": "How many ready sandboxes to keep waiting on the current image.",
        }

    def clean_env_vars(self) -> Any:
        # An emptied box means "no variables"; the model validator checks everything else.
        value = self.cleaned_data["env_vars"]
        return {} if value is None else value


class RepoSecretForm(forms.ModelForm):
    """A secret's name and a write-only value: the value is never sent back to the browser."""

    value = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave blank to keep the current value.",
    )

    class Meta:
        model = RepoSecret
        fields = ["name", "value", "for_repo_commands"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.instance.pk is None and not cleaned.get("value"):
            self.add_error("value", "Enter the secret's value.")
        return cleaned

    def save(self, commit: bool = True) -> RepoSecret:
        secret = super().save(commit=False)
        if self.cleaned_data.get("value"):
            secret.set_value(self.cleaned_data["value"])
        if commit:
            secret.save()
        return secret
