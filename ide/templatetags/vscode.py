"""What the session page knows about VS Code (templates/ide/workspace.html)."""

from django import template

from ide import vscode_static

register = template.Library()


@register.simple_tag
def vscode_prefetch_urls() -> list[str]:
    """The workbench page's largest files at the URLs it will ask for them, for the page to fetch into the
    browser's cache while the sandbox starts ([] without a local code-server: nothing to prefetch)."""
    return vscode_static.prefetch_urls()
