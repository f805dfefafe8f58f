"""The words of merging a fork back into its session, said by ``%session merge`` and by the
JupyterLab panel's merge button (dry run first, then the merge): one place for them; and of
discarding a fork from the panel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from ipysession.session.merge import MergeResult

__all__ = ["MergePreview", "fork_discarded", "merge_preview"]


@dataclass(frozen=True)
class MergePreview:
    """What merging ``fork`` into ``parent`` keeps; ``generation`` is ``None`` for a dry run."""

    fork: str
    parent: str
    from_fork: tuple[str, ...]
    replaced: tuple[str, ...]
    kept: tuple[str, ...]
    history: int
    generation: int | None

    @property
    def text(self) -> str:
        what = (
            f"the fork's variables {', '.join(self.from_fork) or '(none)'}"
            + (f" (replacing the session's {', '.join(self.replaced)})" if self.replaced else "")
            + f"; the session's own {', '.join(self.kept) or '(none)'}"
            + f"; {self.history} history cells"
        )
        if self.generation is None:
            return (
                f"Merging fork '{self.fork}' into '{self.parent}' would keep {what}. Nothing was "
                f"changed: `%session merge '{self.fork}' --yes` merges; the fork stays on disk."
            )
        return (
            f"Merged fork '{self.fork}' into '{self.parent}' (generation {self.generation}): "
            f"{what}. The fork stays on disk (`%session delete '{self.fork}'` removes it); a "
            f"kernel restored from '{self.parent}' gets the merged work."
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "fork": self.fork,
            "parent": self.parent,
            "from_fork": list(self.from_fork),
            "replaced": list(self.replaced),
            "kept": list(self.kept),
            "history": self.history,
            "generation": self.generation,
            "dry_run": self.generation is None,
            "summary": self.text,
        }


def merge_preview(
    fork: str, parent: str, plan: MergeResult, generation: int | None
) -> MergePreview:
    """What :meth:`SessionManager.merge_fork` returned, in words."""
    kept = set(plan.details.variables_kept)
    return MergePreview(
        fork=fork,
        parent=parent,
        from_fork=tuple(sorted(n for n in plan.session.variables if n not in kept)),
        replaced=tuple(plan.details.variables_overridden),
        kept=tuple(sorted(kept)),
        history=len(plan.session.history),
        generation=generation,
    )


def fork_discarded(fork: str, path: Path) -> str:
    """What the panel says once a fork is deleted."""
    return f"Discarded fork '{fork}': everything saved in it is deleted ({path})."
