"""`mlproj completion bash|zsh|fish`: the script a shell loads to complete mlproj's command lines
(commands, options, choices, entry points and runs; mlproj.cli.completions says what completes)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.ui.console import Console


def completion(app: Console, *, shell: str) -> int:
    from mlproj.cli.clickapp import completion_script

    app.print(completion_script(shell).rstrip("\n"))
    return 0
