import * as sections from '../sections';
import { ageText } from '../state';

function connection(overrides: Partial<sections.IConnection> = {}): sections.IConnection {
  return {
    name: 'db',
    kind: 'sqlalchemy',
    target: 'postgresql://ada:***@db.example/prod',
    state: 'connected',
    variable: 'engine',
    auto: true,
    last_used: 100,
    successes: 3,
    failures: 0,
    last_error: null,
    error_at: null,
    advice: null,
    message: 'connected',
    disconnected: false,
    ...overrides
  };
}

function fork(overrides: Partial<sections.IFork> = {}): sections.IFork {
  return {
    name: '/home/ada/a.ipynb (fork 1a2b3c4d)',
    display_name: '~/a.ipynb (fork 1a2b3c4d)',
    fork_of: '/home/ada/a.ipynb',
    updated: 10,
    age_seconds: 7200,
    variables: 4,
    generations: 2,
    state: 'ok',
    ...overrides
  };
}

describe('details', () => {
  it('takes a details reply and refuses anything else', () => {
    const reply = { status: 'ok', not_saved: [], connections: [], recent: [], forks: [] };
    expect(sections.detailsOf(reply)).toBe(reply);
    expect(sections.detailsOf({ status: 'ok', not_saved: [] })).toBeNull();
    expect(sections.detailsOf(null)).toBeNull();
    expect(sections.EMPTY.forks).toBe('No forks of this session.');
  });
});

describe('connections', () => {
  it('show their state and the variable they bind', () => {
    expect(sections.connectionLine(connection())).toBe(
      'db (sqlalchemy) postgresql://ada:***@db.example/prod: connected, bound to `engine`'
    );
  });

  it('offer disconnect only while live, reconnect always', () => {
    expect(sections.connectionActions(connection())).toEqual({ reconnect: true, disconnect: true });
    expect(sections.connectionActions(connection({ state: 'retrying' })).disconnect).toBe(true);
    expect(sections.connectionActions(connection({ state: 'failed' }))).toEqual({
      reconnect: true,
      disconnect: false
    });
    const closed = connection({ state: 'disconnected', disconnected: true });
    expect(sections.connectionActions(closed).disconnect).toBe(false);
  });

  it('show the last error with what to do, and nothing when there is none', () => {
    expect(sections.connectionError(connection())).toBeNull();
    const text = sections.connectionError(
      connection({
        state: 'failed',
        last_error: 'FATAL: password authentication failed for ***',
        error_at: null,
        advice: 'check the credentials, then `%session connect db ...` again'
      })
    );
    expect(text).toBe(
      'Last error: FATAL: password authentication failed for ***\n' +
        'What to do: check the credentials, then `%session connect db ...` again.'
    );
    const dated = sections.connectionError(connection({ last_error: 'timeout', error_at: 1 }));
    expect(dated).toMatch(/^Last error \(.+\): timeout$/);
  });
});

describe('forks', () => {
  it('show their short name, age and what they hold', () => {
    expect(sections.forkLine(fork(), ageText)).toBe(
      '~/a.ipynb (fork 1a2b3c4d), 2 h old: 4 variables'
    );
    expect(sections.forkLine(fork({ display_name: null, age_seconds: null }), ageText)).toBe(
      '/home/ada/a.ipynb (fork 1a2b3c4d): 4 variables'
    );
  });
});
