"""Elements people picked on a page (the Chrome extension's context), and the compact text the agent gets for them.

A prompt's context may hold `"picks"`: a list of what was picked, each one the page's URL and viewport, the
element's selector and trimmed outer HTML, and its React component chain from the root down, each component with
its display name, its props and hook state (already serialised and redacted by the extension) and its source
location where the build exposes one. The agent reads them as a few lines of text, which costs far fewer tokens
than a screenshot or the JSON itself. Anything else in a context is given as JSON, as before."""

import json
from typing import Any

MAX_VALUE_CHARS = 400  # of one component's props or state in the agent's text


def compact(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def source_of(component: dict) -> str:
    source = component.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("file"), str):
        return ""
    line = source.get("line")
    return f"{source['file']}:{line}" if isinstance(line, int) else source["file"]


def pick_lines(number: int, pick: dict) -> list[str]:
    viewport = pick.get("viewport") if isinstance(pick.get("viewport"), dict) else {}
    size = f", viewport {viewport.get('width')}x{viewport.get('height')}" if viewport else ""
    lines = [f"{number}. {pick.get('selector') or 'an element'} on {pick.get('url') or 'the page'}{size}"]
    components = [c for c in pick.get("components") or [] if isinstance(c, dict)]
    if components:
        chain = " > ".join(
            f"{c.get('name') or 'Anonymous'}" + (f" ({source_of(c)})" if source_of(c) else "") for c in components)
        lines.append(f"   Components (root > picked): {chain}")
        for component in components[-3:]:  # the picked one and its nearest parents: what the prompt is about
            for field in ("props", "state"):
                if component.get(field):
                    lines.append(f"   {field.capitalize()} of {component.get('name') or 'Anonymous'}: "
                                 f"{compact(component[field])}")
    if isinstance(pick.get("html"), str) and pick["html"]:
        lines.append(f"   HTML: {pick['html'][:1000]}")
    return lines


def text_for_agent(text: str, context: dict) -> str:
    """The prompt as the agent gets it: its text, the picks as lines, anything else as a JSON block."""
    picks = [p for p in context.get("picks") or [] if isinstance(p, dict)] if isinstance(context, dict) else []
    rest = {k: v for k, v in context.items() if k != "picks"} if isinstance(context, dict) else {}
    parts = [text]
    if picks:
        lines = ["Picked on the page:"]
        for number, pick in enumerate(picks, 1):
            lines.extend(pick_lines(number, pick))
        parts.append("\n".join(lines))
    if rest:
        parts.append(f"Context (JSON):\n```json\n{json.dumps(rest, indent=2)}\n```")
    return "\n\n".join(parts)
