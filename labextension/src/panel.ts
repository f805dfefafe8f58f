/**
 * The session panel (right sidebar): the state; the snapshots and checkpoints with "restore" and
 * "restore only these variables", and "save checkpoint"; what was not saved and why; the
 * connections with reconnect and disconnect; the recent ones; the forks with merge (previewed
 * first) and discard; the notices in full.
 */
import { Dialog, InputDialog, Notification, showDialog } from '@jupyterlab/apputils';
import { historyIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { IReply, SessionLink } from './link';
import {
  EMPTY,
  IConnection,
  IDetails,
  IFork,
  connectionActions,
  connectionError,
  connectionLine,
  detailsOf,
  forkLine
} from './sections';
import { INoticeMessage, ageText } from './state';

export const PANEL_ID = 'ipysession-panel';

/** Requests whose summary the kernel pushes as no notice: the panel shows it. */
const SAYS_ITSELF = new Set(['merge', 'discard_fork']);

interface ISnapshot {
  snapshot: string;
  generation: number | null;
  checkpoint: string | null;
  time: number;
  variables: number | null;
  skipped: number | null;
  writer: string | null;
  state: string;
}

export class SessionPanel extends Widget {
  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-ipysession-panel');
    this.title.icon = historyIcon;
    this.title.caption = 'ipysession: this notebook’s session';
    this._header = document.createElement('div');
    this._header.className = 'jp-ipysession-header';
    const actions = document.createElement('div');
    actions.className = 'jp-ipysession-actions';
    actions.appendChild(this._button('Save checkpoint', () => void this.saveCheckpoint()));
    actions.appendChild(this._button('Refresh', () => void this.refresh()));
    this._list = document.createElement('table');
    this._list.className = 'jp-ipysession-snapshots';
    this._notSaved = this._section('not-saved');
    this._connections = this._section('connections');
    this._recent = this._section('recent');
    this._forks = this._section('forks');
    this._notices = this._section('notices');
    this.node.append(
      this._header,
      actions,
      this._title('Snapshots'),
      this._list,
      this._title('Not saved'),
      this._notSaved,
      this._title('Connections'),
      this._connections,
      this._title('Recent connections'),
      this._recent,
      this._title('Forks'),
      this._forks,
      this._title('Notices'),
      this._notices
    );
  }

  /** The notebook whose session the panel shows (the current one), or null. */
  setLink(link: SessionLink | null): void {
    if (this._link === link) {
      return;
    }
    this._link?.changed.disconnect(this._render, this);
    this._link = link;
    link?.changed.connect(this._render, this);
    this._render();
    this._renderNotices();
    void this.refresh();
  }

  private _renderNotices(): void {
    const kept = this._link ? this._kept.get(this._link) ?? [] : [];
    this._notices.replaceChildren(
      ...kept.map(notice => {
        const node = document.createElement('pre');
        node.className = `jp-ipysession-notice jp-ipysession-notice-${notice.level}`;
        node.textContent = notice.text;
        return node;
      })
    );
  }

  /** Keeps a notice's whole text (newest first, the last 20 of each notebook). */
  addNotice(link: SessionLink, notice: INoticeMessage): void {
    const kept = this._kept.get(link) ?? [];
    kept.unshift(notice);
    kept.splice(20);
    this._kept.set(link, kept);
    if (link === this._link) {
      this._renderNotices();
    }
  }

  async refresh(): Promise<void> {
    const link = this._link;
    if (!link || link.model.phase !== 'ready' || !this.isVisible) {
      this._list.replaceChildren();
      this._showDetails(null);
      return;
    }
    try {
      // The state comes with the details: the counts in the header are read again too (a
      // push comes only after each save).
      const details = await link.request({ action: 'details' });
      this._showDetails(details.status === 'ok' ? detailsOf(details) : null);
      const reply = await link.request({ action: 'snapshots' });
      if (reply.status !== 'ok') {
        this._fail(String(reply.reason));
        return;
      }
      this._showSnapshots(reply.snapshots as unknown as ISnapshot[]);
    } catch (error) {
      this._fail(String(error));
    }
  }

  /** `%session reconnect NAME` or `%session disconnect NAME`, from the connection's row. */
  async toggle(connection: IConnection, action: 'reconnect' | 'disconnect'): Promise<void> {
    const link = this._link;
    if (link) {
      await this._ask(link, `${action}ing ${connection.name}`, {
        action,
        name: connection.name
      });
    }
  }

  /** Shows what merging the fork would keep (a dry run), then merges if the user agrees. */
  async merge(fork: IFork): Promise<void> {
    const link = this._link;
    if (!link) {
      return;
    }
    let preview: IReply;
    try {
      preview = await link.request({ action: 'merge', fork: fork.name, dry_run: true });
    } catch (error) {
      Notification.error(`ipysession: ${error}`, { autoClose: false });
      return;
    }
    if (preview.status !== 'ok') {
      Notification.error(`ipysession: ${preview.reason}`, { autoClose: false });
      return;
    }
    const answer = await showDialog({
      title: `Merge fork ${fork.display_name ?? fork.name}?`,
      body: String(preview.summary),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Merge' })]
    });
    if (answer.button.accept) {
      await this._ask(link, 'merging', { action: 'merge', fork: fork.name, dry_run: false });
    }
  }

  async discardFork(fork: IFork): Promise<void> {
    const link = this._link;
    if (!link) {
      return;
    }
    const answer = await showDialog({
      title: 'Discard fork',
      body: `Delete fork '${fork.display_name ?? fork.name}' and everything saved in it?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Discard' })]
    });
    if (answer.button.accept) {
      await this._ask(link, 'discarding the fork', { action: 'discard_fork', fork: fork.name });
    }
  }

  async saveCheckpoint(): Promise<void> {
    const link = this._link;
    if (!link) {
      return;
    }
    const answer = await InputDialog.getText({
      title: 'Save checkpoint',
      label: 'Checkpoint label',
      placeholder: 'before-cleanup'
    });
    if (!answer.button.accept || !answer.value) {
      return;
    }
    await this._ask(link, 'saving', { action: 'checkpoint', label: answer.value });
  }

  async restore(snapshot: ISnapshot, only: boolean): Promise<void> {
    const link = this._link;
    if (!link) {
      return;
    }
    const request: { [key: string]: any } = { action: 'restore' };
    if (snapshot.checkpoint !== null) {
      request.checkpoint = snapshot.checkpoint;
    } else {
      request.generation = snapshot.generation;
    }
    if (only) {
      const answer = await InputDialog.getText({
        title: `Restore only these variables from ${snapshot.snapshot}`,
        label: 'Variable names, separated by commas or spaces'
      });
      if (!answer.button.accept || !answer.value) {
        return;
      }
      request.variables = answer.value.split(/[\s,]+/).filter(name => name);
    }
    await this._ask(link, 'restoring', request);
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  private async _ask(
    link: SessionLink,
    busy: string,
    request: { [key: string]: any }
  ): Promise<void> {
    link.model.busy = busy;
    this._render();
    try {
      const reply = await link.request(request);
      if (reply.status !== 'ok') {
        Notification.error(`ipysession: ${reply.reason}`, { autoClose: false });
      } else if (SAYS_ITSELF.has(request.action) && typeof reply.summary === 'string') {
        Notification.success(reply.summary, { autoClose: 8000 });
      }
    } catch (error) {
      Notification.error(`ipysession: ${error}`, { autoClose: false });
    } finally {
      link.model.busy = null;
      this._render();
      await this.refresh();
    }
  }

  private _render(): void {
    const link = this._link;
    const state = link?.model.state;
    if (!link || link.model.phase === 'absent') {
      this._header.textContent = 'No ipysession in this notebook’s kernel.';
      return;
    }
    if (!state) {
      this._header.textContent = link.model.label(Date.now() / 1000);
      return;
    }
    const lines = [
      `Session: ${state.session_full}`,
      `State: ${link.model.label(Date.now() / 1000)}`,
      `${state.variables} variables saved, ${state.skipped} not saved`
    ];
    if (state.error) {
      lines.push(`Error: ${state.error}`);
    }
    this._header.textContent = lines.join('\n');
  }

  private _showSnapshots(snapshots: ISnapshot[]): void {
    this._list.replaceChildren();
    const head = this._list.insertRow();
    for (const text of ['snapshot', 'time', 'variables', 'state', '']) {
      const cell = document.createElement('th');
      cell.textContent = text;
      head.appendChild(cell);
    }
    if (!snapshots.length) {
      const row = this._list.insertRow();
      row.insertCell().textContent = 'No snapshots yet.';
      return;
    }
    for (const snapshot of snapshots) {
      const row = this._list.insertRow();
      row.className = 'jp-ipysession-snapshot';
      row.insertCell().textContent = snapshot.snapshot;
      row.insertCell().textContent = new Date(snapshot.time * 1000).toLocaleTimeString();
      row.insertCell().textContent =
        snapshot.variables === null ? '-' : String(snapshot.variables);
      row.insertCell().textContent = snapshot.state;
      const actions = row.insertCell();
      const readable = snapshot.state === 'ok';
      const restore = this._button('Restore', () => void this.restore(snapshot, false));
      const only = this._button('Only…', () => void this.restore(snapshot, true));
      only.title = 'Restore only these variables';
      restore.disabled = only.disabled = !readable;
      actions.append(restore, only);
    }
  }

  private _showDetails(details: IDetails | null): void {
    if (!details) {
      for (const section of [this._notSaved, this._connections, this._recent, this._forks]) {
        section.replaceChildren();
      }
      return;
    }
    this._fill(this._notSaved, details.not_saved, EMPTY.not_saved, row => {
      const node = this._row('jp-ipysession-not-saved');
      node.append(
        this._text('strong', row.name),
        this._text('div', row.reason),
        this._text('div', `Fix: ${row.fix}`, 'jp-ipysession-fix')
      );
      return node;
    });
    this._fill(this._connections, details.connections, EMPTY.connections, connection => {
      const node = this._row('jp-ipysession-connection');
      node.dataset.state = connection.state;
      node.append(this._text('div', connectionLine(connection)));
      const error = connectionError(connection);
      if (error) {
        node.append(this._text('pre', error, 'jp-ipysession-error'));
      }
      const allowed = connectionActions(connection);
      const reconnect = this._button('Reconnect', () => void this.toggle(connection, 'reconnect'));
      const disconnect = this._button(
        'Disconnect',
        () => void this.toggle(connection, 'disconnect')
      );
      reconnect.disabled = !allowed.reconnect;
      disconnect.disabled = !allowed.disconnect;
      node.append(reconnect, disconnect);
      return node;
    });
    this._fill(this._recent, details.recent, EMPTY.recent, row => {
      const node = this._row('jp-ipysession-recent');
      node.append(this._text('div', connectionLine(row)));
      return node;
    });
    this._fill(this._forks, details.forks, EMPTY.forks, fork => {
      const node = this._row('jp-ipysession-fork');
      node.append(
        this._text('div', forkLine(fork, ageText)),
        this._button('Merge…', () => void this.merge(fork)),
        this._button('Discard', () => void this.discardFork(fork))
      );
      return node;
    });
  }

  private _fill<T>(
    section: HTMLDivElement,
    rows: T[],
    empty: string,
    render: (row: T) => HTMLElement
  ): void {
    section.replaceChildren(
      ...(rows.length ? rows.map(render) : [this._text('div', empty, 'jp-ipysession-empty')])
    );
  }

  private _title(text: string): HTMLHeadingElement {
    const title = document.createElement('h3');
    title.textContent = text;
    return title;
  }

  private _section(name: string): HTMLDivElement {
    const section = document.createElement('div');
    section.className = `jp-ipysession-section jp-ipysession-section-${name}`;
    return section;
  }

  private _row(className: string): HTMLDivElement {
    const row = document.createElement('div');
    row.className = `jp-ipysession-row ${className}`;
    return row;
  }

  private _text(tag: string, text: string, className?: string): HTMLElement {
    const node = document.createElement(tag);
    node.textContent = text;
    if (className) {
      node.className = className;
    }
    return node;
  }

  private _fail(reason: string): void {
    this._list.replaceChildren();
    this._list.insertRow().insertCell().textContent = `Could not list snapshots: ${reason}`;
  }

  private _button(label: string, onClick: () => void): HTMLButtonElement {
    const button = document.createElement('button');
    button.className = 'jp-mod-styled jp-ipysession-button';
    button.textContent = label;
    button.onclick = onClick;
    return button;
  }

  private _link: SessionLink | null = null;
  private _kept = new WeakMap<SessionLink, INoticeMessage[]>();
  private _notices: HTMLDivElement;
  private _notSaved: HTMLDivElement;
  private _connections: HTMLDivElement;
  private _recent: HTMLDivElement;
  private _forks: HTMLDivElement;
  private _header: HTMLDivElement;
  private _list: HTMLTableElement;
}
