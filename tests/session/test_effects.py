"""Which cells replay may run without asking: cell_effects reads a cell's transformed source."""

from __future__ import annotations

import pytest

from ipysession.session.effects import Effect, cell_effects


@pytest.mark.parametrize(
    "code",
    [
        "h = hashlib.sha256()\nh.update(b'abc')",
        "g = (i * i for i in range(10))",
        "lock = threading.Lock()",
        "con = sqlite3.connect('data.db')",
        "hdul = fits.open('image.fits')",
        "text = open('notes.txt').read()",
        "df = df.drop(columns=['b']).rename(columns=str.upper).copy()",
        "s = 'a-b'.replace('-', '+')",
        "get_ipython().run_line_magic('time', 'x = sum(range(10))')",
        "get_ipython().run_line_magic('matplotlib', 'inline')",
    ],
)
def test_cells_that_only_compute_are_pure(code: str) -> None:
    effects = cell_effects(code)
    assert effects.pure, effects.reasons
    assert effects.describe() == "only computes"


@pytest.mark.parametrize(
    ("code", "effect", "words"),
    [
        ("fh = open('out.txt', 'w')", Effect.FILES, "open(..., 'w')"),
        ("fh = open(path, mode)", Effect.FILES, "open(..., mode)"),
        ("p.open('a')", Effect.FILES, ".open(..., 'a')"),
        ("df.to_csv('out.csv')", Effect.FILES, ".to_csv(...)"),
        ("fig.savefig('plot.png')", Effect.FILES, ".savefig(...)"),
        ("Path('x').write_text('hi')", Effect.FILES, ".write_text(...)"),
        ("con.execute('insert into t values (1)')", Effect.FILES, ".execute(...)"),
        ("os.remove('x')", Effect.FILES, ".remove(...)"),
        ("os.replace('a', 'b')", Effect.FILES, "os.replace"),
        ("get_ipython().system('ls')", Effect.SHELL, "!command"),
        ("files = get_ipython().getoutput('ls')", Effect.SHELL, "!command"),
        ("import subprocess\nsubprocess.run(['ls'])", Effect.SHELL, "subprocess"),
        ("os.system('ls')", Effect.SHELL, "os.system"),
        ("get_ipython().run_cell_magic('bash', '', 'ls')", Effect.SHELL, "%%bash"),
        ("import requests\nr = requests.get(u)", Effect.NETWORK, "requests"),
        ("df = pd.read_csv('https://example.org/x.csv')", Effect.NETWORK, "a URL"),
        ("get_ipython().run_line_magic('pip', 'install x')", Effect.MAGIC, "%pip"),
        ("get_ipython().run_cell_magic('writefile', 'a.py', 'x')", Effect.MAGIC, "%%writefile"),
        ("get_ipython().run_line_magic('time', \"open('o', 'w')\")", Effect.FILES, "open("),
    ],
)
def test_cells_with_side_effects_say_which(code: str, effect: Effect, words: str) -> None:
    effects = cell_effects(code, {"os": "os", "shutil": "shutil"}.get)
    assert effect in effects.effects
    assert any(words in reason for reason in effects.reasons), effects.reasons
    assert effect.value in effects.describe()


def test_a_name_is_judged_by_the_module_it_comes_from() -> None:
    modules = {"get": "requests.api", "s": "requests.sessions", "np": "numpy"}
    assert Effect.NETWORK in cell_effects("r = get(url)", modules.get).effects
    assert Effect.NETWORK in cell_effects("r = s.post(url)", modules.get).effects
    assert cell_effects("a = np.zeros(3)", modules.get).pure


def test_code_that_does_not_parse_is_not_replayed_without_asking() -> None:
    effects = cell_effects("x = (")
    assert not effects.pure
    assert "does not parse" in effects.describe()
