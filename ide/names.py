"""How the workspace names a session's services, for the proxy's messages and the page alike."""

# How pages name each service: a short label (tabs, captions) and the subject of a sentence ("... is starting").
# The workspace page hands them to its scripts (ide/views.py), so the browser and the proxy say the same.
SERVICE_NAMES = {
    "ide": {"label": "VS Code", "subject": "VS Code"},
    "desktop": {"label": "Desktop", "subject": "The desktop"},
    "preview": {"label": "Preview :{port}", "subject": "The preview on port {port}"},
}


def service_label(service: str, form: str = "label") -> str:
    """How pages name `service`: its short "label" ("Desktop", "Preview :3000") or, as a sentence's
    "subject", "The desktop", "The preview on port 3000"."""
    kind, _, port = service.partition("-")
    names = SERVICE_NAMES.get(kind if kind == "preview" and port.isdigit() else service)
    if names is None:
        return f"The service {service!r}" if form == "subject" else service
    return names[form].format(port=port)
