/**
 * The session panel (right sidebar): the state, the snapshots and checkpoints with "restore" and
 * "restore only these variables", and "save checkpoint".
 */
import { InputDialog, Notification } from '@jupyterlab/apputils';
import { historyIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { SessionLink } from './link';
import { INoticeMessage } from './state';

export const PANEL_ID = 'ipysession-panel';

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
    const noticesTitle = document.createElement('h3');
    noticesTitle.textContent = 'Notices';
    this._notices = document.createElement('div');
    this._notices.className = 'jp-ipysession-notices';
    this.node.append(this._header, actions, this._list, noticesTitle, this._notices);
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
      return;
    }
    try {
      // The counts in the header are read again too (a push comes only after each save).
      await link.request({ action: 'state' });
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
    const connections = Object.entries(state.connections);
    if (connections.length) {
      lines.push(
        'Connections: ' + connections.map(([name, s]) => `${name} (${s})`).join(', ')
      );
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
  private _header: HTMLDivElement;
  private _list: HTMLTableElement;
}
