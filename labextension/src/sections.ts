/**
 * The session panel's sections beside the snapshots: what was not saved, the connections, the
 * recent ones, the forks. Types of the kernel's `details` reply (docs/frontend-protocol.md) and
 * the words and choices each row shows; no JupyterLab import, unit-tested with jest.
 */

/** A variable the last save left out, why, and what to do about it. */
export interface INotSaved {
  name: string;
  reason: string;
  fix: string;
}

/** A connection as `%session connections` shows it; every text redacted by the kernel. */
export interface IConnectionRow {
  name: string;
  kind: string;
  target: string;
  state: string;
  variable: string;
  auto: boolean;
  last_used: number | null;
  successes: number;
  failures: number;
  last_error: string | null;
}

/** One of this session's connections, with its last error and what to do. */
export interface IConnection extends IConnectionRow {
  error_at: number | null;
  advice: string | null;
  message: string | null;
  disconnected: boolean;
}

/** A saved fork (a row of `ipysession list --json`). */
export interface IFork {
  name: string;
  display_name: string | null;
  fork_of: string | null;
  updated: number | null;
  age_seconds: number | null;
  variables: number;
  generations: number;
  state: string;
}

/** What merging a fork keeps; `generation` null for a dry run. */
export interface IMergePreview {
  fork: string;
  parent: string;
  from_fork: string[];
  replaced: string[];
  kept: string[];
  history: number;
  generation: number | null;
  dry_run: boolean;
  summary: string;
}

export interface IDetails {
  not_saved: INotSaved[];
  connections: IConnection[];
  recent: IConnectionRow[];
  forks: IFork[];
}

/** The sections of a `details` reply, or null when it is not one. */
export function detailsOf(reply: unknown): IDetails | null {
  const d = reply as IDetails | null;
  if (
    !d ||
    typeof d !== 'object' ||
    !Array.isArray(d.not_saved) ||
    !Array.isArray(d.connections) ||
    !Array.isArray(d.recent) ||
    !Array.isArray(d.forks)
  ) {
    return null;
  }
  return d;
}

/** Which buttons a connection's row offers. */
export function connectionActions(c: IConnection): {
  reconnect: boolean;
  disconnect: boolean;
} {
  const live = c.state === 'connected' || c.state === 'connecting' || c.state === 'retrying';
  return { reconnect: true, disconnect: live && !c.disconnected };
}

/** A connection's line: name, kind, target, state and the variable it binds. */
export function connectionLine(c: IConnectionRow): string {
  return `${c.name} (${c.kind}) ${c.target}: ${c.state}, bound to \`${c.variable}\``;
}

/** A connection's last error with when it happened and what to do, or null when none. */
export function connectionError(c: IConnection): string | null {
  if (!c.last_error) {
    return null;
  }
  const when = c.error_at !== null ? ` (${new Date(c.error_at * 1000).toLocaleTimeString()})` : '';
  const advice = c.advice ? `\nWhat to do: ${c.advice}.` : '';
  return `Last error${when}: ${c.last_error}${advice}`;
}

/** A fork's line: its short name, its age and what it holds. */
export function forkLine(f: IFork, ageText: (seconds: number) => string): string {
  const age = f.age_seconds === null ? '' : `, ${ageText(f.age_seconds)} old`;
  return `${f.display_name ?? f.name}${age}: ${f.variables} variables`;
}

/** What a section says when it has nothing to list. */
export const EMPTY = {
  not_saved: 'Every variable was saved.',
  connections: 'No connections. `%session connect NAME KIND SPEC` adds one.',
  recent: 'No recent connections yet.',
  forks: 'No forks of this session.'
};
