from django import forms
from django.core.exceptions import ImproperlyConfigured

from model_providers.providers import NO_PROVIDER_MESSAGE, model_choices
from sandboxes.models import Repo, RepoImage
from sessions.models import MAX_PROMPT_CHARS


class RepoChoiceField(forms.ModelChoiceField):
    def __init__(self, *args, ready_ids: set[int], **kwargs):
        self.ready_ids = ready_ids
        super().__init__(*args, **kwargs)

    def label_from_instance(self, repo: Repo) -> str:
        return repo.name if repo.pk in self.ready_ids else f"{repo.name} (no image yet)"


class NewSessionForm(forms.Form):
    """A repo, a model and the first prompt. The repos `user` may use are offered; those without an image say
    so."""

    model = forms.ChoiceField(label="Model")
    prompt = forms.CharField(
        label="What should the agent do?",
        max_length=MAX_PROMPT_CHARS,
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "The invoice table overflows on mobile, fix it."}),
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        ready = set(RepoImage.objects.filter(status=RepoImage.Status.READY).values_list("repo_id", flat=True))
        self.fields["repo"] = RepoChoiceField(
            Repo.objects.usable_by(user).order_by("name"), ready_ids=ready, empty_label=None,
            help_text="A repo with no image yet cannot start a sandbox until its first image is built.",
        )
        self.order_fields(["repo", "model", "prompt"])
        try:
            choices, self.no_provider_message = model_choices(), ""
        except ImproperlyConfigured as error:  # a provider set up wrong: say what, as for none
            choices, self.no_provider_message = [], str(error)
        model = self.fields["model"]
        if choices:
            model.choices, model.initial = choices, choices[0][0]
        else:  # still allowed: the session then reports the missing provider itself
            self.no_provider_message = self.no_provider_message or NO_PROVIDER_MESSAGE
            model.choices, model.required = [("", "the default (no provider configured)")], False
