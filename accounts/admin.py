from django import forms
from django.contrib import admin, messages
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import INVITATION_DAYS, Invitation


class InvitationForm(forms.ModelForm):
    days = forms.IntegerField(min_value=1, max_value=90, initial=INVITATION_DAYS, help_text="How long it may be used.")

    class Meta:
        model = Invitation
        fields = ["email"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Making one shows its link once (and mails it to its address, if it has one); only its hash is kept."""

    form = InvitationForm
    list_display = ["__str__", "created_by", "created_at", "expires_at", "used_by", "used_at"]
    readonly_fields = ["created_by", "created_at", "expires_at", "used_by", "used_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # an invitation is made or deleted, never edited into another

    def save_model(self, request, obj: Invitation, form, change: bool) -> None:
        token = obj.issue(request.user, form.cleaned_data["days"])
        link = request.build_absolute_uri(reverse("accept-invitation", args=[token]))
        until = f"{timezone.localtime(obj.expires_at):%Y-%m-%d %H:%M}"
        if obj.email:
            send_mail("You are invited to Inspect",
                      f"Make your account here (the link works once, until {until}):\n\n{link}\n", None, [obj.email])
        self.message_user(request, f"The invitation's link, shown only now (valid until {until}): {link}",
                          messages.SUCCESS)
