"""The kernel side of the JupyterLab extension (ipysession/lab.py), spoken to over the real
``ipysession`` comm of a real kernel, as the extension does: subscribe right after a restart,
before any cell runs; state after each save; notices instead of text under cells; the panel's
requests. The browser half is in tests/lab/."""

from __future__ import annotations

import json
import queue
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from ipysession.session.forks import fork_name
from tests.builders import wait_for
from tests.kernels import FAST_AUTOSAVE, MANAGER, Kernel, start_kernel, wait_for_autosave
from tests.lab_comm import ask, restarted_and_subscribed, subscribe

pytestmark = pytest.mark.kernel

TIMEOUT = 60


def run_collecting(kernel: Kernel, code: str, into: list[dict[str, Any]]) -> str:
    """Run ``code``; keep every IOPub message seen meanwhile (comm pushes have any parent)."""
    kc = kernel.client
    msg_id = kc.execute(code)
    stdout = ""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        into.append(msg)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            stdout += msg["content"]["text"]
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return stdout
    raise AssertionError(f"no idle for {code!r}")


def pushed(messages: list[dict[str, Any]], comm: str, kind: str) -> list[dict[str, Any]]:
    return [
        msg["content"]["data"]
        for msg in messages
        if msg["msg_type"] == "comm_msg"
        and msg["content"].get("comm_id") == comm
        and msg["content"]["data"].get("type") == kind
    ]


def test_after_a_restart_the_state_and_summary_come_before_any_cell(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE, env={"IPYSESSION_NAME": "lab-link"}) as kernel:
        client, comm, reply = restarted_and_subscribed(kernel, "a = 1\nb = [1, 2]\nimport json")
        state = reply["state"]
        assert state["type"] == "state"
        assert state["state"] == "restored"
        assert state["session"] == "lab-link"
        assert state["session_id"] == reply["session_id"]
        assert state["restored"]["variables"] == 2
        assert state["restored"]["items"] == state["restored"]["total"]
        assert state["restored"]["warnings"] == 0
        assert state["conflict"] is None

        # The summary that used to wait for the first cell is a notification now...
        kind, notice = client.next_on(comm)
        assert kind == "comm_msg"
        assert notice["type"] == "notice"
        assert notice["kind"] == "restore"
        assert notice["level"] == "info"
        assert notice["text"].startswith("ipysession: restored 'lab-link'")
        # ...and not text under that cell.
        first = kernel.run("c = a + len(b)")
        assert "ipysession" not in first.text
        assert not first.outputs


def test_one_state_message_per_save(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE, env={"IPYSESSION_NAME": "per-save"}) as kernel:
        wait_for_autosave(kernel)  # the start's own save is done: nothing in flight
        _, comm, _ = subscribe(kernel)
        seen: list[dict[str, Any]] = []
        before = int(run_collecting(kernel, f"print({MANAGER}.last_generation or 0)", seen))
        for value in range(5):
            run_collecting(kernel, f"x{value} = {value}", seen)

        def saved() -> bool:
            out = run_collecting(
                kernel, f"print({MANAGER}.status().pending, {MANAGER}.last_generation)", seen
            )
            pending, generation = out.split()
            return pending == "False" and generation != "None"

        wait_for(saved, "the changes are saved")
        after = kernel.value(f"{MANAGER}.last_generation")
        states = pushed(seen, comm, "state")
        assert after > before
        assert len(states) == after - before
        assert states[-1]["state"] == "saved"
        assert states[-1]["generation"] == after
        assert not pushed(seen, comm, "notice")


def test_without_a_subscriber_the_first_cell_still_shows_the_summary(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE, env={"IPYSESSION_NAME": "fallback"}) as kernel:
        kernel.run("kept = 1")
        wait_for_autosave(kernel)
        kernel.restart()
        first = kernel.run("kept")
        assert "ipysession: restored 'fallback'" in first.text


def test_panel_requests_snapshots_checkpoint_and_restore(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE, env={"IPYSESSION_NAME": "panel"}) as kernel:
        kernel.run("value = 'first'")
        wait_for_autosave(kernel)
        client, comm, _ = subscribe(kernel)

        reply = ask(client, comm, {"action": "checkpoint", "label": "good", "id": 2})
        assert reply["status"] == "ok", reply
        assert "checkpoint 'good'" in reply["summary"]
        kernel.run("value = 'second'")
        wait_for_autosave(kernel)

        listed = ask(client, comm, {"action": "snapshots", "id": 3})
        names = [row["snapshot"] for row in listed["snapshots"]]
        assert "checkpoint good" in names
        assert names[0].startswith("generation ")

        restored = ask(
            client,
            comm,
            {"action": "restore", "checkpoint": "good", "variables": ["value"], "id": 4},
        )
        assert restored["status"] == "ok", restored
        assert kernel.value("value") == "first"

        bad = ask(client, comm, {"action": "restore", "generation": "x", "id": 5})
        assert bad["status"] == "error"
        assert "'generation' must be a number" in bad["reason"]
        missing = ask(client, comm, {"action": "restore", "checkpoint": "nope", "id": 6})
        assert missing["status"] == "error"
        assert "nope" in missing["reason"]
        no_conflict = ask(client, comm, {"action": "conflict", "choice": "takeover", "id": 7})
        assert no_conflict["status"] == "error"
        assert "no conflict" in no_conflict["reason"]


def test_discard_then_restart_starts_empty(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE, env={"IPYSESSION_NAME": "gone"}) as kernel:
        kernel.run("secret_work = 1")
        wait_for_autosave(kernel)
        client, comm, _ = subscribe(kernel)
        reply = ask(client, comm, {"action": "discard", "id": 2})
        assert reply["status"] == "ok", reply
        assert reply["path"]
        kernel.restart()
        assert kernel.value("'secret_work' in globals()") is False


SECRET = "tok-7c1d9e2f-lab-SECRET"


def test_panel_details_not_saved_and_connections_with_reconnect(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with start_kernel(tmp_path, FAST_AUTOSAVE, env={"IPYSESSION_NAME": "details"}) as kernel:
        kernel.run("gen = (i for i in range(3))\nkept = 1")
        kernel.run(f"%session connect db sqlalchemy 'sqlite:///{db}?token={SECRET}'")
        wait_for_autosave(kernel)
        said: list[Any] = []
        client, comm, reply = subscribe(kernel)
        said.append(reply)

        details = ask(client, comm, {"action": "details", "id": 2}, said)
        assert details["status"] == "ok", details
        (row,) = [r for r in details["not_saved"] if r["name"] == "gen"]
        assert "generator" in row["reason"]
        assert "`%session replay gen`" in row["fix"]
        (db_row,) = details["connections"]
        assert (db_row["name"], db_row["state"], db_row["variable"]) == ("db", "connected", "db")
        assert db_row["last_error"] is None
        assert "db" in [r["name"] for r in details["recent"]]
        assert details["forks"] == []
        assert details["state"]["loading"] is None

        off = ask(client, comm, {"action": "disconnect", "name": "db", "id": 3}, said)
        assert off["status"] == "ok", off
        assert off["connection"]["disconnected"] is True
        assert off["state"]["connections"]["db"] != "connected"
        assert kernel.value("'db' in globals()") is False

        on = ask(client, comm, {"action": "reconnect", "name": "db", "id": 4}, said)
        assert on["status"] == "ok", on
        wait_for(
            lambda: (
                ask(client, comm, {"action": "details", "id": 5}, said)["connections"][0]["state"]
                == "connected"
            ),
            "db connected again",
        )
        assert kernel.value("type(db).__name__") == "Engine"

        unknown = ask(client, comm, {"action": "reconnect", "name": "nope", "id": 6}, said)
        assert unknown["status"] == "error"
        assert "nope" in unknown["reason"]
        missing = ask(client, comm, {"action": "disconnect", "id": 7}, said)
        assert missing["status"] == "error"
        assert SECRET not in json.dumps(said)


def test_a_connection_that_fails_shows_its_error_redacted(tmp_path: Path) -> None:
    folder = tmp_path / "dbfiles"
    folder.mkdir()
    target = f"sqlite:///{folder / 'shop.db'}?token={SECRET}"
    with start_kernel(tmp_path, FAST_AUTOSAVE, env={"IPYSESSION_NAME": "failing"}) as kernel:
        seen: list[dict[str, Any]] = []
        client, comm, _ = subscribe(kernel)
        run_collecting(kernel, f"%session connect shop sqlalchemy '{target}'", seen)
        said: list[Any] = []
        ask(client, comm, {"action": "disconnect", "name": "shop", "id": 2}, said)
        shutil.rmtree(folder)  # sqlite cannot open a file in a folder that is gone
        again = ask(client, comm, {"action": "reconnect", "name": "shop", "id": 3}, said)
        assert again["status"] == "ok", again

        def failed() -> dict[str, Any] | None:
            row = ask(client, comm, {"action": "details", "id": 4}, said)["connections"][0]
            return row if row["last_error"] else None

        def told(kind: str) -> list[dict[str, Any]]:
            comm_data = [m["content"]["data"] for m in seen if m["msg_type"] == "comm_msg"]
            return [m for m in said + comm_data if m.get("type") == "notice" and m["kind"] == kind]

        wait_for(lambda: failed() and told("connection"), "the reconnect failed, and said so")
        row = failed()
        assert row is not None
        assert row["state"] != "connected"
        assert row["advice"]
        assert row["error_at"]
        # Each notice carries the kind of the part that raised it, not one guessed from words.
        assert any("'shop'" in n["text"] for n in told("connection"))
        assert any("master key" in n["text"] for n in told("key"))
        assert not told("file")
        # The cell's own input holds it (the user typed it); no comm message does.
        comm_messages = [m["content"] for m in seen if m["msg_type"].startswith("comm")]
        assert SECRET not in json.dumps([said, comm_messages])


def test_forks_preview_merge_and_discard(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE, env={"IPYSESSION_NAME": "forked"}) as kernel:
        kernel.run("a = 1")
        wait_for_autosave(kernel)
        fork = fork_name("forked", "abcd1234")
        kernel.run(f"b = 2\n{MANAGER}.save({fork!r})\ndel b")
        wait_for_autosave(kernel)
        client, comm, _ = subscribe(kernel)
        details = ask(client, comm, {"action": "details", "id": 2})
        assert [f["name"] for f in details["forks"]] == [fork]
        assert details["forks"][0]["fork_of"] == "forked"

        before = kernel.value(f"{MANAGER}.store.generations('forked')[0].number")
        preview = ask(client, comm, {"action": "merge", "fork": fork, "id": 3})
        assert preview["status"] == "ok", preview
        assert preview["merge"]["dry_run"] is True
        assert "b" in preview["merge"]["from_fork"]
        assert preview["summary"].startswith(f"Merging fork '{fork}' into 'forked' would keep")
        assert kernel.value(f"{MANAGER}.store.generations('forked')[0].number") == before

        merged = ask(client, comm, {"action": "merge", "fork": fork, "dry_run": False, "id": 4})
        assert merged["status"] == "ok", merged
        assert merged["summary"].startswith(f"Merged fork '{fork}' into 'forked' (generation")
        assert merged["merge"]["generation"] > before

        not_a_fork = ask(client, comm, {"action": "discard_fork", "fork": "forked", "id": 5})
        assert not_a_fork["status"] == "error"
        assert "not a fork" in not_a_fork["reason"]
        gone = ask(client, comm, {"action": "discard_fork", "fork": fork, "id": 6})
        assert gone["status"] == "ok", gone
        assert gone["summary"].startswith(f"Discarded fork '{fork}'")
        assert ask(client, comm, {"action": "details", "id": 7})["forks"] == []
        assert kernel.value(f"{MANAGER}.store.exists({fork!r})") is False


def test_state_says_what_is_still_loading_until_it_is_bound(tmp_path: Path) -> None:
    threshold = "c.SessionManager.background_restore_bytes = 4 * 1024 * 1024"
    with start_kernel(
        tmp_path, FAST_AUTOSAVE, threshold, env={"IPYSESSION_NAME": "loading"}
    ) as kernel:
        client, comm, reply = restarted_and_subscribed(
            kernel, "import numpy as np\nbig = np.ones(5_000_000)\nsmall = 1"
        )
        loading = reply["state"]["loading"]
        if loading is not None:  # not bound yet: the status bar says so, then hears it ended
            assert loading["names"] == ["big"]
            assert (loading["done"], loading["total"]) == (0, 1)
            while True:
                _, pushed_state = client.next_on(comm)
                if pushed_state.get("type") == "state" and pushed_state["loading"] is None:
                    break
        assert kernel.value("big.shape") == (5_000_000,)
