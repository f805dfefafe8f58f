"""The HTML form of every view (issue 16): real tables, code in ``<pre>``, state by word and
colour, JupyterLab's theme variables, and nothing a name or a value can inject.

Each document is parsed with :mod:`html.parser` into a small tree: a tag left open, closed twice
or closed out of order fails the test, and the assertions read cells and attributes from the
tree, not from the markup's text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ipysession import display
from ipysession.errors import FileProblem, ProblemKind
from ipysession.model import ConnectionRecord, ConnectionStats, HistoryEntry
from ipysession.presentation import (
    Column,
    Level,
    Notice,
    State,
    Table,
    Tone,
    connection_rows,
    connections_table,
    history_table,
    restore_view,
    session_rows,
    sessions_table,
    show_view,
    snapshot_rows,
    snapshots_table,
    status_view,
    tone_of,
)
from ipysession.presentation import html as to_html
from ipysession.session.reports import RestoreReport, RestoreTimes, SaveReport
from ipysession.store import GenerationInfo
from tests.builders import CONN_SECRET, ENV_SECRET, make_session
from tests.test_presentation import status, summary

PATH = Path("/store/sessions/nb-1a2b")
#: Markup in a name: it must come out as text, never as an element or an attribute.
HOSTILE = '</style><style>*{}</style><script>alert("x")</script><img src=x onerror=alert(1)>&amp;'
VOID = {"br", "img", "hr", "meta", "input", "col"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        """What a reader sees: the text of every element but the style element."""
        return "".join(
            c if isinstance(c, str) else c.text() for c in self.children if not _is_style(c)
        )

    def find_all(self, tag: str) -> list[Node]:
        found = [self] if self.tag == tag else []
        for child in self.children:
            if isinstance(child, Node):
                found.extend(child.find_all(tag))
        return found


def _is_style(node: Node | str) -> bool:
    return isinstance(node, Node) and node.tag == "style"


def css(tree: Node) -> dict[str, dict[str, str]]:
    """The rules of the message's one style element: each selector's declarations."""
    [style] = tree.find_all("style")
    assert "scoped" in style.attrs
    rules: dict[str, dict[str, str]] = {}
    for rule in "".join(c for c in style.children if isinstance(c, str)).split("}"):
        if not rule.strip():
            continue
        selectors, _, body = rule.partition("{")
        declarations = dict(d.split(":", 1) for d in body.split(";") if d)
        for selector in selectors.split(","):
            assert selector.startswith("div.ipysession "), selector  # nothing leaks out
            rules.setdefault(selector, {}).update(declarations)
    return rules


class TreeBuilder(HTMLParser):
    """A strict tree builder: every element closed, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert len(self.stack) > 1, f"</{tag}> closes nothing"
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(markup: str) -> Node:
    builder = TreeBuilder()
    builder.feed(markup)
    builder.close()
    assert len(builder.stack) == 1, f"left open: {[n.tag for n in builder.stack[1:]]}"
    [top] = [c for c in builder.root.children if isinstance(c, Node)]
    assert top.tag == "div"
    assert "ipysession" in top.attrs["class"].split()
    return top


def tables(tree: Node) -> list[list[list[str]]]:
    """Every table as rows of cell texts (header row included)."""
    return [
        [
            [cell.text() for cell in row.children if isinstance(cell, Node)]
            for row in t.find_all("tr")
        ]
        for t in tree.find_all("table")
    ]


def states(tree: Node) -> dict[str, str]:
    """Each coloured state word and its tone class."""
    found = {}
    for span in tree.find_all("span"):
        classes = span.attrs.get("class", "").split()
        if "ipysession-state" in classes:
            [tone] = [c.removeprefix("ipysession-") for c in classes if c != "ipysession-state"]
            found[span.text()] = tone
    return found


def db_record(name: str = "db") -> ConnectionRecord:
    return ConnectionRecord(
        name,
        "sqlalchemy",
        params={"url": "postgresql://ada@db/prod"},
        secrets={"password": CONN_SECRET},
        stats=ConnectionStats(
            created=1.0, last_used=9.0, successes=2, failures=1, last_error=f"auth {CONN_SECRET}"
        ),
    )


# --- tables -------------------------------------------------------------------------------------


def test_a_table_is_a_table_with_one_row_per_row_and_the_text_form_unchanged() -> None:
    rows = session_rows(
        [summary(), summary(name="other", problem=FileProblem(PATH, ProblemKind.CORRUPT, "c"))],
        current="nb",
    )
    table = sessions_table(rows, empty="none")
    message = display.render_table(table)
    assert message.text == table.text()  # the terminal's table, as the command line prints it
    tree = parse(message.html)
    [rendered] = tables(tree)
    assert rendered[0] == list(table.headers)
    assert rendered[1:] == [list(row) for row in table.rows]
    assert [th.attrs.get("scope") for th in tree.find_all("th")] == ["col"] * len(table.headers)
    assert states(tree) == {"ok": "good", "corrupt": "error"}
    # The note under the table is there too.
    assert "ipysession doctor" in tree.text()


def test_cells_keep_their_spaces_and_are_left_aligned() -> None:
    rows = session_rows(
        [summary(), summary(name="nb (fork k1)", updated=1_699_999_000.0)], now=1_700_000_000.0
    )
    tree = parse(display.render_table(sessions_table(rows, empty="none")).html)
    fork_cell = next(td for td in tree.find_all("td") if "fork k1" in td.text())
    assert fork_cell.text().startswith("  └ ")  # the indent under its parent survives
    cell_rule = css(tree)["div.ipysession td"]
    assert cell_rule["white-space"] == "pre-wrap"
    assert cell_rule["text-align"] == "left"  # JupyterLab right-aligns cells by default


def test_an_empty_table_says_what_its_empty_text_says() -> None:
    message = display.render_table(connections_table([]))
    assert message.text.startswith("No connections.")
    tree = parse(message.html)
    assert tree.find_all("table") == []
    assert tree.text() == message.text


def test_snapshot_states_are_words_with_colours() -> None:
    generations = [
        GenerationInfo(2, PATH / "gen-2.ipys", 100, 2.0, 2.5, 4, 5, skipped=2),
        GenerationInfo(
            3, PATH / "gen-3.ipys", 9, 3.0, problem=FileProblem(PATH, ProblemKind.WRONG_KEY, "k")
        ),
    ]
    tree = parse(
        display.render_table(snapshots_table(snapshot_rows(generations, []), empty="-")).html
    )
    assert states(tree) == {"ok": "good", "wrong-key": "error"}
    [rendered] = tables(tree)
    assert [row[-1] for row in rendered[1:]] == ["ok", "wrong-key"]


def test_history_cells_are_pre_blocks_that_keep_their_whitespace() -> None:
    source = "def f(x):\n    if x:\n        return '<b>' & x\n\n\tpass"
    entries = [
        HistoryEntry(source, 3, 1_700_000_000.0, True, "run-one"),
        HistoryEntry("1/0", 4, 1_700_000_001.0, False, "run-two"),
    ]
    table = history_table(entries, run_id="run-two")
    tree = parse(display.render_table(table).html)
    pres = tree.find_all("pre")
    assert [pre.text() for pre in pres] == [source, "1/0"]  # exact: indents, tab, blank line
    assert {pre.attrs["class"] for pre in pres} == {"ipysession-code"}
    rules = css(tree)
    assert rules["div.ipysession pre.ipysession-code"]["white-space"] == "pre"
    assert rules["div.ipysession pre"]["font-family"].startswith("var(--jp-code-font-family")
    assert states(tree) == {"ok": "good", "error": "error"}
    assert "run-tw (this run)" in tree.text()


def test_connections_table_shows_no_secret_and_colours_the_state() -> None:
    records = {"db": db_record(), "kernel": ConnectionRecord("kernel", "jupyter")}
    table = connections_table(connection_rows(records, {"db": "failed", "kernel": "connected"}))
    message = display.render_table(table)
    assert CONN_SECRET not in message.html + message.text
    tree = parse(message.html)
    assert states(tree) == {"failed": "error", "connected": "good"}
    assert "postgresql://ada:***@db/prod" in tree.text()


# --- escaping -----------------------------------------------------------------------------------


def test_names_cannot_inject_markup_anywhere() -> None:
    report = RestoreReport(
        HOSTILE, generation=1, variables=[HOSTILE], skipped=[(HOSTILE, f"bad {HOSTILE}")]
    )
    messages = [
        display.render_table(sessions_table(session_rows([summary(name=HOSTILE)]), empty="-")),
        display.render_table(
            Table(("a", "b"), ((HOSTILE, HOSTILE),), "-", columns=(Column.STATE, Column.CODE))
        ),
        display.render_table(connections_table(connection_rows({HOSTILE: db_record(HOSTILE)}, {}))),
        display.render_status(
            status_view(
                status(
                    session=HOSTILE,
                    skipped=[(HOSTILE, HOSTILE)],
                    notices=[(1.0, HOSTILE)],
                    restore=report,
                    last_error=HOSTILE,
                    connections={HOSTILE: db_record(HOSTILE)},
                )
            )
        ),
        display.render_restore(report),
        display.text_message(HOSTILE, level="error"),
    ]
    for message in messages:
        tree = parse(message.html)
        tags = [node.tag for node in _walk(tree)]
        assert not set(tags) & {"script", "img"}, tags
        assert tags.count("style") == 1  # ipysession's own, and nothing a name brought
        assert all(not name.startswith("on") for node in _walk(tree) for name in node.attrs)
        assert HOSTILE in tree.text()  # shown, as text
        assert "<script>" not in message.html


def _walk(node: Node) -> list[Node]:
    found = [node]
    for child in node.children:
        if isinstance(child, Node):
            found.extend(_walk(child))
    return found


def test_a_quote_in_a_name_cannot_leave_an_attribute() -> None:
    # Names are only ever element text, but quotes are escaped too, in case that changes.
    html = to_html.table_html(Table(("a",), (('" onmouseover="x',),), "-"))
    assert 'onmouseover="x' not in html
    assert "&quot;" in html


# --- status, restore, show ----------------------------------------------------------------------


def test_status_is_a_field_table_with_its_state_and_the_same_text_as_before() -> None:
    report = RestoreReport(
        "nb",
        generation=3,
        variables=["a"],
        skipped=[("big", "not saved: too big")],
        problems=["corrupt: gen-4.ipys"],
        seconds=0.5,
        times=RestoreTimes(imports=0.25, data=0.125),
    )
    view = status_view(
        status(
            fork_of="nb0",
            restore=report,
            connections={"db": db_record()},
            connection_states={"db": "connected"},
            notices=[(1_700_000_000.0, "first line\n  second, indented")],
        )
    )
    message = display.render_status(view)
    assert message.text == view.notice.text
    assert message.text.splitlines()[2] == "State:     fork"
    tree = parse(message.html)
    fields, not_saved, connections, skipped, problems, notices = tables(tree)
    assert ["State", "fork"] in fields
    assert ["Session", "nb"] in fields
    assert not_saved == [
        ["name", "reason"],
        ["g", "generator objects cannot be saved"],
        ["lock", "TypeError: no"],
    ]
    assert connections[1][:2] == ["db", "connected"]
    assert skipped == [["item", "reason"], ["big", "not saved: too big"]]
    assert problems == [["problem"], ["corrupt: gen-4.ipys"]]
    assert notices[1][1] == "first line\n  second, indented"
    assert states(tree) == {"fork": "info", "connected": "good"}
    assert CONN_SECRET not in message.html
    # The bar says the level: info here (a skipped value or a damaged file in the last restore
    # does not make status a warning; only capture being off or a failed save do).
    assert "ipysession-level-info" in tree.attrs["class"].split()


def test_restore_summary_splits_its_time_in_both_forms() -> None:
    report = RestoreReport(
        "nb",
        generation=2,
        variables=["a", "b"],
        imports=["torch"],
        seconds=4.511,
        times=RestoreTimes(imports=3.9, data=0.58, connections=0.003),
    )
    view = restore_view(report)
    assert view.notice.lines == (
        "ipysession: restored 'nb' (generation 2): 2 variables, 1 import in 4511 ms "
        "(imports 3900 ms, data 580 ms, replay 0 ms, connections 3 ms).",
    )
    message = display.render_restore(report)
    assert message.text == view.notice.text
    assert (
        "imports 3900 ms, data 580 ms, replay 0 ms, connections 3 ms" in parse(message.html).text()
    )


def test_show_has_field_tables_variable_states_and_imports_as_code() -> None:
    view = show_view(make_session("nb", complete=True), generation=2, path=PATH / "gen-2.ipys")
    message = display.render_show(view)
    assert message.text == view.text()
    assert CONN_SECRET not in message.html
    assert ENV_SECRET not in message.html
    tree = parse(message.html)
    rendered = tables(tree)
    assert ["name", "nb"] in rendered[0]
    variables = next(t for t in rendered if t[0] == ["name", "type", "size", "state"])
    assert [row[-1].split(" ")[0].rstrip(":") for row in variables[1:]] == ["saved", "skipped"]
    assert states(tree) == {"saved": "good", "skipped": "warning"}
    code = [pre.text() for pre in tree.find_all("pre") if "ipysession-code" in pre.attrs["class"]]
    assert code == ["\n".join(imp.statement() for imp in make_session("nb", complete=True).imports)]


def test_text_messages_keep_line_breaks_and_indentation() -> None:
    message = display.text_message("ipysession: first\n  indented: reason", level="warning")
    assert message.text == "ipysession: first\n  indented: reason"
    tree = parse(message.html)
    assert "<br>" not in message.html
    [block] = [d for d in tree.find_all("div") if d is not tree]
    assert block.text() == message.text
    assert block.attrs["class"] == "ipysession-line"
    assert css(tree)["div.ipysession .ipysession-line"]["white-space"] == "pre-wrap"
    assert "ipysession-level-warning" in tree.attrs["class"].split()


# --- theme --------------------------------------------------------------------------------------


def test_every_colour_is_a_jupyterlab_variable_with_fallbacks() -> None:
    message = display.render_status(
        status_view(status(connections={"db": db_record()}, last_error="disk full"))
    )
    tree = parse(message.html)
    inline = [node.attrs["style"] for node in _walk(tree) if "style" in node.attrs]
    declarations = [d.split(":", 1) for style in inline for d in style.split(";") if d]
    declarations += [[p, v] for rule in css(tree).values() for p, v in rule.items()]
    # Colours appear only inside var(--jp-..., fallback): a fixed colour would be unreadable on
    # one of the themes.
    coloured = [
        value
        for prop, value in declarations
        if prop in ("color", "background", "border-left", "border-bottom")
    ]
    assert len(coloured) > len(Tone)
    for value in coloured:
        if value not in ("inherit", "transparent"):
            assert "var(--jp-" in value, value
    for tone in Tone:
        colour = to_html.TONE_COLOURS[tone]
        assert colour.startswith("var(--jp-"), colour
        assert "var(--vscode-" in colour, colour
        assert re.search(r"#[0-9a-f]{6}\)\)$", colour), colour  # a value last of all
    assert "--jp-ui-font-family" in tree.attrs["style"]
    rules = css(tree)
    assert rules["div.ipysession td"]["border-bottom"].startswith("1px solid var(--jp-border")
    for tone in Tone:
        assert (
            rules[f"div.ipysession .ipysession-{tone.value}"]["color"]
            == (to_html.TONE_COLOURS[tone])
        )


@pytest.mark.parametrize(
    ("text", "word", "tone"),
    [
        ("ok", "ok", Tone.GOOD),
        ("corrupt (falls back to generation 2)", "corrupt", Tone.ERROR),
        ("in use", "in use", Tone.INFO),
        ("read-only", "read-only", Tone.WARNING),
        ("skipped: too big", "skipped", Tone.WARNING),
        ("okay", "", Tone.NEUTRAL),
        ("fork-of-something", "", Tone.NEUTRAL),
        ("", "", Tone.NEUTRAL),
    ],
)
def test_state_words_and_their_tones(text: str, word: str, tone: Tone) -> None:
    assert tone_of(text) == (word, tone)


def test_every_state_has_a_tone_of_its_own_word() -> None:
    for state in State:
        assert tone_of(str(state))[0] == str(state)
    assert State.CORRUPT.tone is Tone.ERROR


def test_the_notice_level_colours_the_bar() -> None:
    for level in Level:
        html = to_html.notice_html(Notice(("x",), level))
        tree = parse(html)
        assert f"ipysession-level-{level.value}" in tree.attrs["class"].split()
        assert to_html.TONE_COLOURS[to_html.LEVEL_TONES[level]] in tree.attrs["style"]


def test_a_text_message_of_an_unknown_level_is_info() -> None:
    tree = parse(display.text_message("x", level="loud").html)
    assert "ipysession-level-info" in tree.attrs["class"].split()


def test_mime_bundle_carries_both_forms() -> None:
    message = display.render_table(sessions_table(session_rows([summary()]), empty="-"))
    bundle = message._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert bundle["text/plain"] == message.text
    json.dumps(bundle)  # what a kernel sends must be JSON


def test_a_save_summary_lists_what_was_left_out_with_the_setting_that_keeps_it() -> None:
    reason = (
        "bytes of 3.0 MiB is over the per-variable limit of 1.0 MiB; "
        "`%config SessionManager.max_variable_bytes = 4 * 1024**2` (4.0 MiB) saves it"
    )
    message = display.render_save(SaveReport("nb", 4, "/store/nb", 1, [("big", reason)]))
    assert message.text.splitlines() == [
        "ipysession: saved 'nb' (generation 4): 1 variable, 1 skipped to /store/nb",
        "Not saved (1):",
        f"  big: {reason}",
    ]
    tree = parse(message.html)
    assert tables(tree) == [[["name", "reason"], ["big", reason]]]
    assert "ipysession-save" in tree.attrs["class"].split()
    assert "ipysession-level-warning" in tree.attrs["class"].split()
