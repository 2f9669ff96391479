from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Who may have an account: sign-up closed by default, opened by invitation or per email domain."""

    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"
