"""Values that are handles to results held by a server, which a saved copy cannot bring back.

A Dask ``Future`` pickles without complaint, but what it names lives in the memory of one
cluster's workers, and only for as long as a client holds it: after a restart the copy comes back
broken (``RuntimeError ... not properly initialized``, ``FutureCancelledError``). The same holds
for a persisted collection (``x.persist()``), whose graph is made of futures, and for a list or
mapping of futures (``client.map``). :func:`remote_handle_reason` names them, so capture skips
them with a reason that says what to do instead: publish a dataset on the scheduler, which
outlives the client, and fetch it after the restart.

Nothing here imports Dask: a value is only looked at when ``distributed`` is already imported.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from itertools import islice

__all__ = ["remote_handle_reason"]

#: How many entries of a graph or a container are looked at (a persisted graph can be huge).
_SCAN = 10_000


def _future_type() -> type | None:
    module = sys.modules.get("distributed")
    future = getattr(module, "Future", None) if module is not None else None
    return future if isinstance(future, type) else None


def _holds_futures(value: object, future: type) -> bool:
    if isinstance(value, Mapping):
        items: object = value.values()
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return False
    return any(isinstance(item, future) for item in islice(items, _SCAN))  # type: ignore[call-overload]


def _persisted(value: object, future: type) -> bool:
    graph_of = getattr(type(value), "__dask_graph__", None)
    if not callable(graph_of):
        return False
    try:
        graph = graph_of(value)
    except Exception:  # noqa: BLE001 - an odd collection is simply not a persisted one
        return False
    return isinstance(graph, Mapping) and _holds_futures(graph, future)


def remote_handle_reason(name: str, value: object) -> str | None:
    """Why ``value`` must not be saved, if it is a handle to results held by a Dask cluster."""
    future = _future_type()
    if future is None:
        return None
    if isinstance(value, future):
        what = "a Dask future"
    elif _holds_futures(value, future):
        what = f"a {type(value).__name__} of Dask futures"
    elif _persisted(value, future):
        what = f"a persisted Dask collection ({type(value).__name__})"
    else:
        return None
    return (
        f"{what} names results held in the workers' memory of one cluster, which a saved copy "
        f"cannot bring back; publish it on the scheduler instead: "
        f"client.publish_dataset({name}={name}), and after the restart "
        f"{name} = client.get_dataset({name!r})"
    )
