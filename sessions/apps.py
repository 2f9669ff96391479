from django.apps import AppConfig


class SessionsConfig(AppConfig):
    # django.contrib.sessions already owns the label "sessions".
    name = "sessions"
    label = "agent_sessions"
    verbose_name = "Agent sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sandboxes.signals import bridge_restarted, sandbox_phase_changed, snapshot_taken
        from sessions import access, bridge_events

        sandbox_phase_changed.connect(bridge_events.on_sandbox_phase, dispatch_uid="sessions-sandbox-phase")
        snapshot_taken.connect(bridge_events.on_snapshot_taken, dispatch_uid="sessions-snapshot-taken")
        bridge_restarted.connect(bridge_events.on_bridge_restarted, dispatch_uid="sessions-bridge-restarted")
        access.connect_signals()
