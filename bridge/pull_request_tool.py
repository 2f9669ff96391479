"""The agent's `create_pull_request` tool: an OpenCode custom tool (a file in its config folder) that asks for the
session's pull request. The tool itself only answers; the bridge sees the call among OpenCode's events and, once
the run's changes are committed and handed over, tells the control plane (event `pull_request_asked`), which
opens it as the person whose prompt the agent is working on. No credential is involved in the sandbox."""

from pathlib import Path

from .protocol import PULL_REQUEST_MAX_BODY_CHARS, PULL_REQUEST_MAX_TITLE_CHARS

TOOL_NAME = "create_pull_request"

TOOL_SOURCE = """// Written by the Inspect bridge. Asks the platform for this session's pull request.
import { tool } from "@opencode-ai/plugin"

export default tool({
  description: "Open (or update) the GitHub pull request of this session's branch, as the person whose prompt " +
    "you are working on. Call it only when that person asks for a pull request. Do not commit or push yourself: " +
    "the platform commits your changes when your turn ends, pushes them and opens the pull request; its link " +
    "appears on the session page.",
  args: {
    title: tool.schema.string().describe("The pull request's title: what the change does, in a short sentence"),
    body: tool.schema.string().optional().describe("The description in Markdown: what changed and why"),
    draft: tool.schema.boolean().optional().describe("Open it as a draft (default: false)"),
  },
  async execute(args) {
    return "The platform will open the pull request when this turn ends, with your changes committed. " +
      "Tell the person its link will appear on the session page."
  },
})
"""


def install(config_dir: Path) -> bool:
    """Put the tool in an OpenCode config folder (OpenCode loads `tools/*.ts` there, as for the screenshot tool).
    True when it changed."""
    target = config_dir / "tools" / f"{TOOL_NAME}.ts"
    if target.exists() and target.read_text() == TOOL_SOURCE:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(TOOL_SOURCE)
    return True


def asked(event: dict) -> dict | None:
    """The pull request a finished tool call asks for ({title, body, draft}), or None."""
    if event.get("kind") != "tool_finished" or event.get("tool") != TOOL_NAME or event.get("error"):
        return None
    args = event.get("input") if isinstance(event.get("input"), dict) else {}
    title = args.get("title") if isinstance(args.get("title"), str) else ""
    body = args.get("body") if isinstance(args.get("body"), str) else ""
    return {"title": title.strip()[:PULL_REQUEST_MAX_TITLE_CHARS], "body": body[:PULL_REQUEST_MAX_BODY_CHARS],
            "draft": args.get("draft") is True}
