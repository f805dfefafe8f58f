/**
 * The extension's model of one notebook's session, built only from the messages of the
 * `ipysession` comm (docs/frontend-protocol.md). No JupyterLab import: unit-tested with jest.
 */

export type Level = 'info' | 'warning' | 'error';

/** `restored N of M`: items back of those the session held, and what needs a look. */
export interface IRestored {
  items: number;
  total: number;
  variables: number;
  warnings: number;
  generation: number | null;
  checkpoint: string | null;
  seconds: number;
}

/** Values restored in the background, still on their way (`null` once all are bound). */
export interface ILoading {
  names: string[];
  progress: { [name: string]: string };
  done: number;
  total: number;
}

/** Another kernel held the session when this one opened it. */
export interface IConflict {
  session: string;
  holder: string | null;
  taken: 'fork' | 'readonly';
  configured: 'fork' | 'readonly' | 'takeover';
}

/** Values the restore could rebuild only by replaying cells with side effects. */
export interface IReplayGroup {
  names: string[];
  /** The names with their types, as the restore summary prints them. */
  label: string;
  cells: number[];
  /** Why it asks: the first of those cells with a side effect and what it does. */
  reason: string;
}

export interface IStateMessage {
  type: 'state';
  state: string;
  session: string;
  session_full: string;
  session_id: string | null;
  restored: IRestored | null;
  last_save: number | null;
  generation: number | null;
  variables: number;
  skipped: number;
  autosave: boolean;
  pending: boolean;
  error: string | null;
  read_only: boolean;
  fork_of: string | null;
  fork_reason: string | null;
  holder: string | null;
  connections: { [name: string]: string };
  conflict?: IConflict | null;
  replay?: IReplayGroup[];
  loading?: ILoading | null;
}

export interface INoticeMessage {
  type: 'notice';
  kind: string;
  level: Level;
  text: string;
}

/**
 * Where the link to the kernel stands. `absent`: the kernel has no ipysession (the item hides);
 * `connecting`: a kernel is starting, not asked yet; `restoring`: a kernel that had ipysession
 * restarts, so it restores its session now; `ready`: state known.
 */
export type Phase = 'absent' | 'connecting' | 'restoring' | 'ready';

export function isStateMessage(data: unknown): data is IStateMessage {
  const d = data as IStateMessage | null;
  return (
    !!d &&
    typeof d === 'object' &&
    d.type === 'state' &&
    typeof d.state === 'string' &&
    typeof d.session === 'string'
  );
}

export function isNoticeMessage(data: unknown): data is INoticeMessage {
  const d = data as INoticeMessage | null;
  return (
    !!d &&
    typeof d === 'object' &&
    d.type === 'notice' &&
    typeof d.text === 'string' &&
    (d.level === 'info' || d.level === 'warning' || d.level === 'error')
  );
}

/** The last part of a session name (a notebook path), for the status bar. */
export function shortName(name: string): string {
  const trimmed = name.replace(/[\\/]+$/, '');
  const parts = trimmed.split(/[\\/]/);
  return parts[parts.length - 1] || name;
}

/** `5 s`, `3 min`, `2 h`: how long ago, coarse enough not to flicker. */
export function ageText(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min`;
  }
  return `${Math.floor(s / 3600)} h`;
}

export class SessionModel {
  phase: Phase = 'connecting';
  state: IStateMessage | null = null;
  /** What the user asked the kernel to do and waits for (`saving`, `restoring`), or null. */
  busy: string | null = null;
  /** Whether the conflict of the current kernel was already put to the user. */
  conflictAsked = false;
  /** Whether the replay question of the current kernel was already put to the user. */
  replayAsked = false;

  /** Takes one message pushed by the kernel or carried by a reply; returns the notice if any. */
  apply(data: unknown): INoticeMessage | null {
    if (isStateMessage(data)) {
      this.state = data;
      this.phase = 'ready';
      return null;
    }
    if (isNoticeMessage(data)) {
      return data;
    }
    return null;
  }

  /** The kernel restarts: if it had ipysession, its session comes back now. */
  kernelRestarting(): void {
    this.phase = this.phase === 'absent' && !this.state ? 'absent' : 'restoring';
    this.busy = null;
    this.conflictAsked = false;
    this.replayAsked = false;
  }

  /** A new kernel (another kernel picked, or the first one): ask it again. */
  kernelChanged(): void {
    this.phase = 'connecting';
    this.state = null;
    this.busy = null;
    this.conflictAsked = false;
    this.replayAsked = false;
  }

  /** The kernel refused the comm: no ipysession there. */
  kernelAbsent(): void {
    this.phase = 'absent';
    this.state = null;
  }

  /** The conflict to put to the user once, or null. */
  conflictToAsk(): IConflict | null {
    const conflict = this.state?.conflict ?? null;
    if (!conflict || this.conflictAsked) {
      return null;
    }
    return conflict;
  }

  /**
   * The groups to ask about replaying, once per kernel, or null. After the conflict: a kernel
   * that must first choose fork, read-only or take over is not asked to run cells yet.
   */
  replayToAsk(): IReplayGroup[] | null {
    const groups = this.state?.replay ?? [];
    if (groups.length === 0 || this.replayAsked || this.conflictToAsk()) {
      return null;
    }
    return groups;
  }

  /** The status bar's text; `now` in epoch seconds. */
  label(now: number): string {
    if (this.phase === 'absent') {
      return '';
    }
    if (this.phase === 'restoring') {
      return 'Session: restoring…';
    }
    const state = this.state;
    if (!state) {
      return 'Session: …';
    }
    const name = shortName(state.session);
    if (this.busy) {
      return `${name}: ${this.busy}…`;
    }
    const loading = state.loading;
    if (loading && loading.total > 0) {
      // The value being read now: "loading 1 of 1", never "0 of 1".
      return `${name}: loading ${Math.min(loading.done + 1, loading.total)} of ${loading.total}`;
    }
    switch (state.state) {
      case 'saved': {
        const ago = state.last_save === null ? '' : ` ${ageText(now - state.last_save)} ago`;
        return `${name}: saved${ago}`;
      }
      case 'restored': {
        const r = state.restored;
        if (!r) {
          return `${name}: restored`;
        }
        const mark = r.warnings > 0 ? ` ⚠ ${r.warnings}` : '';
        return `${name}: restored ${r.items} of ${r.total}${mark}`;
      }
      case 'new':
        return `${name}: new`;
      default:
        return `${name}: ${state.state}`;
    }
  }

  /** The status bar's tooltip: the full name and the details of the state. */
  title(): string {
    const state = this.state;
    if (this.phase === 'absent') {
      return '';
    }
    if (!state) {
      return 'ipysession: waiting for the kernel';
    }
    const lines = [`ipysession session: ${state.session_full}`];
    if (state.restored) {
      const r = state.restored;
      const where =
        r.checkpoint !== null ? `checkpoint '${r.checkpoint}'` : `generation ${r.generation}`;
      lines.push(
        `Restored ${r.items} of ${r.total} items (${r.variables} variables) from ${where}` +
          (r.warnings ? `; ${r.warnings} need a look (open the panel)` : '')
      );
    }
    if (state.loading) {
      const arriving = state.loading.names.map(n => {
        const progress = state.loading?.progress[n];
        return progress ? `${n} (${progress})` : n;
      });
      lines.push(`Loading in the background: ${arriving.join(', ')}`);
    }
    if (state.generation !== null) {
      lines.push(`Last saved generation: ${state.generation}`);
    }
    if (!state.autosave) {
      lines.push('Autosave is off: `%session autosave on` turns it back on');
    }
    if (state.error) {
      lines.push(`Error: ${state.error}`);
    }
    if (state.fork_of) {
      lines.push(`Fork of '${state.fork_of}': ${state.fork_reason ?? ''}`);
    }
    if (state.read_only) {
      lines.push(`Read-only: ${state.holder ?? 'another kernel'} holds it`);
    }
    lines.push('Click to open the session panel');
    return lines.join('\n');
  }
}

/**
 * The restart dialog's text: whether the variables come back. `null` when ipysession is not
 * in the kernel (JupyterLab's own dialog is right then).
 */
export function restartDialogBody(model: SessionModel): string | null {
  const state = model.state;
  if (model.phase === 'absent' || !state) {
    return null;
  }
  const name = shortName(state.session);
  if (state.read_only) {
    return (
      `This kernel opened session '${name}' read-only: after the restart it is restored ` +
      'again as saved by the kernel that holds it; changes made here since are lost.'
    );
  }
  return (
    `ipysession keeps session '${name}': after the restart its variables, imports, ` +
    'settings, history and connections are restored. "Restart and Discard Session" starts ' +
    'the new kernel empty and deletes the saved session.'
  );
}

/** The replay dialog's paragraphs: what would be rebuilt, by which cells, and why it asks. */
export function replayDialogLines(groups: IReplayGroup[]): string[] {
  const lines = groups.map(group => {
    const cells = (group.cells.length === 1 ? 'cell ' : 'cells ') + group.cells.join(', ');
    return `${group.label}: replays ${cells}; ${group.reason}.`;
  });
  return [
    'The restore could not bring these back as values; rebuilding them runs cells again, ' +
      'with their side effects:',
    ...lines,
    '"Not now" leaves them out; %session replay NAME rebuilds them later.'
  ];
}

/** The most a notification toast shows; the whole text is in the session panel. */
export const TOAST_LENGTH = 140;

/**
 * A notice's toast: its first line with the session's full path shortened to its name, cut to
 * what a toast shows. `more` says whether the panel has more to read.
 */
export function toastText(
  notice: INoticeMessage,
  state: IStateMessage | null
): { text: string; more: boolean } {
  const lines = notice.text.split('\n');
  let first = lines[0];
  if (state && state.session_full && state.session_full !== shortName(state.session_full)) {
    first = first.split(state.session_full).join(shortName(state.session_full));
  }
  let more = lines.length > 1;
  if (first.length > TOAST_LENGTH) {
    first = first.slice(0, TOAST_LENGTH - 1) + '…';
    more = true;
  }
  return { text: first, more };
}
