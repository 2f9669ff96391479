"""GitHub tokens that allauth kept in plain text (SOCIALACCOUNT_STORE_TOKENS was on) move here, encrypted."""

from django.db import migrations


def move_tokens(apps, schema_editor):
    from sandboxes import crypto

    SocialToken = apps.get_model("socialaccount", "SocialToken")
    GitHubToken = apps.get_model("pulls", "GitHubToken")
    for token in SocialToken.objects.filter(account__provider="github").select_related("account"):
        account = token.account
        GitHubToken.objects.update_or_create(user_id=account.user_id, defaults={
            "github_id": int(account.uid), "login": str((account.extra_data or {}).get("login") or ""),
            "access_encrypted": crypto.encrypt(token.token),
            "refresh_encrypted": crypto.encrypt(token.token_secret) if token.token_secret else "",
            "expires_at": token.expires_at,
        })
    SocialToken.objects.filter(account__provider="github").delete()


class Migration(migrations.Migration):
    dependencies = [("pulls", "0001_initial"), ("socialaccount", "0006_alter_socialaccount_extra_data")]
    operations = [migrations.RunPython(move_tokens, migrations.RunPython.noop)]
