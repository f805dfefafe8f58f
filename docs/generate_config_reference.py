"""Write docs/configuration.md from SessionManager's traits: the help text is the one source.

Run `python docs/generate_config_reference.py`; tests/test_docs.py fails when the file is stale.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

HEADER = """# Configuration reference

Every option is a trait of `SessionManager`, set in `ipython_config.py` (terminal IPython) or
`ipython_kernel_config.py` (Jupyter kernels), for example:

```python
c.InteractiveShellApp.extensions = ["ipysession"]
c.SessionManager.autosave_interval = 10.0
c.SessionManager.exclude = ["tmp_*", "*_secret"]
```

or from the command line: `ipython --ext ipysession --SessionManager.autorestore=notify`.

Environment variables: `IPYSESSION_DIR` (where sessions live), `IPYSESSION_CONFIG_DIR` (where the
key file lives), `IPYSESSION_NAME` (the session name), `IPYSESSION_PASSPHRASE` (derive the key
from a passphrase instead of the keyring or key file).

This file is generated from the traits' help text by `docs/generate_config_reference.py`.

"""


def render() -> str:
    from ipysession.session.manager import SessionManager

    lines = [HEADER]
    for name, trait in sorted(SessionManager.class_traits(config=True).items()):
        kind = type(trait).__name__
        default = trait.default_value_repr()
        if kind == "Enum":
            kind = "one of " + ", ".join(repr(v) for v in trait.values)
        help_text = " ".join(textwrap.dedent(trait.help).split())
        lines.append(f"## `SessionManager.{name}`\n")
        lines.append(f"- type: {kind}\n- default: `{default}`\n")
        lines.append(f"{help_text}\n")
    return "\n".join(lines)


def main() -> int:
    target = Path(__file__).with_name("configuration.md")
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
