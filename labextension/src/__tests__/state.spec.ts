import {
  IStateMessage,
  SessionModel,
  ageText,
  isNoticeMessage,
  isStateMessage,
  replayDialogLines,
  restartDialogBody,
  shortName,
  toastText,
  TOAST_LENGTH
} from '../state';

function state(overrides: Partial<IStateMessage> = {}): IStateMessage {
  return {
    type: 'state',
    state: 'restored',
    session: '~/work/analysis.ipynb',
    session_full: '/home/me/work/analysis.ipynb',
    session_id: 'abc123',
    restored: {
      items: 12,
      total: 14,
      variables: 9,
      warnings: 2,
      generation: 7,
      checkpoint: null,
      seconds: 0.2
    },
    last_save: null,
    generation: null,
    variables: 9,
    skipped: 2,
    autosave: true,
    pending: false,
    error: null,
    read_only: false,
    fork_of: null,
    fork_reason: null,
    holder: null,
    connections: {},
    conflict: null,
    ...overrides
  };
}

describe('messages', () => {
  it('tells state from notice messages and refuses anything else', () => {
    expect(isStateMessage(state())).toBe(true);
    expect(isStateMessage({ type: 'state' })).toBe(false);
    expect(isStateMessage(null)).toBe(false);
    expect(isNoticeMessage({ type: 'notice', kind: 'restore', level: 'info', text: 'x' })).toBe(
      true
    );
    expect(isNoticeMessage({ type: 'notice', level: 'loud', text: 'x' })).toBe(false);
  });
});

describe('SessionModel', () => {
  it('says restored N of M with a warning mark, before anything was saved', () => {
    const model = new SessionModel();
    expect(model.apply(state())).toBeNull();
    expect(model.phase).toBe('ready');
    expect(model.label(1000)).toBe('analysis.ipynb: restored 12 of 14 ⚠ 2');
    expect(model.title()).toContain('generation 7');
  });

  it('has no warning mark when everything came back', () => {
    const model = new SessionModel();
    model.apply(
      state({
        restored: {
          items: 3,
          total: 3,
          variables: 3,
          warnings: 0,
          generation: 2,
          checkpoint: null,
          seconds: 0
        }
      })
    );
    expect(model.label(0)).toBe('analysis.ipynb: restored 3 of 3');
  });

  it('counts the time since the last save', () => {
    const model = new SessionModel();
    model.apply(state({ state: 'saved', last_save: 1000 }));
    expect(model.label(1042)).toBe('analysis.ipynb: saved 42 s ago');
    expect(model.label(1000 + 180)).toBe('analysis.ipynb: saved 3 min ago');
  });

  it('shows the other states by their word', () => {
    for (const word of ['pending', 'paused', 'error', 'read-only', 'fork']) {
      const model = new SessionModel();
      model.apply(state({ state: word }));
      expect(model.label(0)).toBe(`analysis.ipynb: ${word}`);
    }
  });

  it('says restoring while a kernel that had ipysession restarts', () => {
    const model = new SessionModel();
    model.apply(state());
    model.kernelRestarting();
    expect(model.phase).toBe('restoring');
    expect(model.label(0)).toBe('Session: restoring…');
    model.apply(state({ state: 'saved', last_save: 0 }));
    expect(model.label(5)).toBe('analysis.ipynb: saved 5 s ago');
  });

  it('shows nothing for a kernel without ipysession', () => {
    const model = new SessionModel();
    model.kernelAbsent();
    expect(model.label(0)).toBe('');
    expect(restartDialogBody(model)).toBeNull();
    model.kernelRestarting();
    expect(model.phase).toBe('absent');
  });

  it('shows what the user waits for', () => {
    const model = new SessionModel();
    model.apply(state());
    model.busy = 'saving';
    expect(model.label(0)).toBe('analysis.ipynb: saving…');
  });

  it('puts a conflict to the user once per kernel start', () => {
    const model = new SessionModel();
    const conflict = {
      session: '/n.ipynb',
      holder: 'kernel k1',
      taken: 'fork' as const,
      configured: 'fork' as const
    };
    model.apply(state({ state: 'fork', conflict }));
    expect(model.conflictToAsk()).toEqual(conflict);
    model.conflictAsked = true;
    expect(model.conflictToAsk()).toBeNull();
    model.kernelRestarting();
    model.apply(state({ state: 'fork', conflict }));
    expect(model.conflictToAsk()).toEqual(conflict);
  });
});

describe('replay question', () => {
  const group = {
    names: ['guard', 'out'],
    label: 'guard (_thread.lock), out (_io.TextIOWrapper)',
    cells: [3],
    reason: "cell 3 writes files (open(..., 'a'))"
  };

  it('is asked once per kernel, after any conflict', () => {
    const model = new SessionModel();
    model.apply(state());
    expect(model.replayToAsk()).toBeNull();
    model.apply(state({ replay: [group] }));
    expect(model.replayToAsk()).toEqual([group]);
    model.replayAsked = true;
    expect(model.replayToAsk()).toBeNull();
    model.kernelRestarting();
    const conflict = {
      session: 'analysis.ipynb',
      holder: 'pid 12',
      taken: 'fork' as const,
      configured: 'fork' as const
    };
    model.apply(state({ replay: [group], conflict }));
    expect(model.replayToAsk()).toBeNull();
    model.conflictAsked = true;
    expect(model.replayToAsk()).toEqual([group]);
  });

  it('says what runs and why', () => {
    const lines = replayDialogLines([group, { ...group, names: ['h'], label: 'h', cells: [4, 6] }]);
    expect(lines[1]).toBe(
      "guard (_thread.lock), out (_io.TextIOWrapper): replays cell 3; cell 3 writes files (open(..., 'a'))."
    );
    expect(lines[2]).toContain('replays cells 4, 6');
    expect(lines[lines.length - 1]).toContain('%session replay NAME');
  });
});

describe('loading', () => {
  it('says loading N of M until the values are bound, then the state word again', () => {
    const model = new SessionModel();
    model.kernelRestarting();
    expect(model.label(0)).toBe('Session: restoring…');
    const loading = {
      names: ['big', 'bigger'],
      progress: { big: '12 of 40 MB' },
      done: 0,
      total: 2
    };
    model.apply(state({ loading }));
    expect(model.label(0)).toBe('analysis.ipynb: loading 1 of 2');
    expect(model.title()).toContain('Loading in the background: big (12 of 40 MB), bigger');
    model.apply(state({ loading: { ...loading, names: ['bigger'], progress: {}, done: 1 } }));
    expect(model.label(0)).toBe('analysis.ipynb: loading 2 of 2');
    model.apply(state({ loading: null }));
    expect(model.label(0)).toBe('analysis.ipynb: restored 12 of 14 ⚠ 2');
    expect(model.title()).not.toContain('Loading');
  });

  it('lets what the user asked for come first', () => {
    const model = new SessionModel();
    model.apply(state({ loading: { names: ['big'], progress: {}, done: 0, total: 1 } }));
    model.busy = 'saving';
    expect(model.label(0)).toBe('analysis.ipynb: saving…');
  });
});

describe('restart dialog', () => {
  it('says the session is restored instead of all variables being lost', () => {
    const model = new SessionModel();
    model.apply(state());
    const body = restartDialogBody(model)!;
    expect(body).toContain("keeps session 'analysis.ipynb'");
    expect(body).not.toContain('will be lost');
  });

  it('says what a read-only kernel loses', () => {
    const model = new SessionModel();
    model.apply(state({ read_only: true, state: 'read-only' }));
    expect(restartDialogBody(model)).toContain('read-only');
  });
});

describe('helpers', () => {
  it('shortens names and ages', () => {
    expect(shortName('/a/b/c.ipynb')).toBe('c.ipynb');
    expect(shortName('plain')).toBe('plain');
    expect(ageText(0)).toBe('0 s');
    expect(ageText(7200)).toBe('2 h');
  });
});

describe('toasts', () => {
  it('show the first line with the short name, and say when there is more', () => {
    const notice = {
      type: 'notice' as const,
      kind: 'restore',
      level: 'warning' as const,
      text:
        "ipysession: restored '/home/me/work/analysis.ipynb' (generation 7): 9 variables\n" +
        'Not restored (1):\n  df: not saved: too large'
    };
    expect(toastText(notice, state())).toEqual({
      text: "ipysession: restored 'analysis.ipynb' (generation 7): 9 variables",
      more: true
    });
  });

  it('cut long lines to what a toast shows', () => {
    const notice = {
      type: 'notice' as const,
      kind: 'notice',
      level: 'info' as const,
      text: 'x'.repeat(500)
    };
    const toast = toastText(notice, null);
    expect(toast.text.length).toBe(TOAST_LENGTH);
    expect(toast.more).toBe(true);
  });
});
