/**
 * ipysession for JupyterLab 4: the session's state in the status bar, notifications instead of
 * text under cells, restart commands that say whether the session is kept, the session panel,
 * the conflict dialog, and the notebook's layout kept with its session.
 */
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  ISessionContext,
  ISessionContextDialogs,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { JSONObject, JSONValue } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { keepLayout } from './layoutShell';
import { METADATA_KEY, SessionLink } from './link';
import { PANEL_ID, SessionPanel } from './panel';
import {
  IConflict,
  INoticeMessage,
  IReplayGroup,
  replayDialogLines,
  restartDialogBody,
  toastText
} from './state';

const KEEP = 'ipysession:restart-keep';
const DISCARD = 'ipysession:restart-discard';
const OPEN_PANEL = 'ipysession:open-panel';

class StatusItem extends Widget {
  constructor(onClick: () => void) {
    super();
    this.addClass('jp-ipysession-status');
    this.node.onclick = onClick;
  }

  setLink(link: SessionLink | null): void {
    this._link?.changed.disconnect(this.update, this);
    this._link = link;
    link?.changed.connect(this.update, this);
    this.update();
  }

  get link(): SessionLink | null {
    return this._link;
  }

  update(): void {
    const model = this._link?.model;
    this.node.textContent = model ? model.label(Date.now() / 1000) : '';
    this.node.title = model ? model.title() : '';
    this.node.dataset.state = model?.state?.state ?? model?.phase ?? '';
  }

  private _link: SessionLink | null = null;
}

function notify(
  app: JupyterFrontEnd,
  link: SessionLink,
  notice: INoticeMessage,
  panel: SessionPanel
): void {
  // One line in the toast; the whole text in the session panel ("Details").
  panel.addNotice(link, notice);
  const toast = toastText(notice, link.model.state);
  Notification.emit(toast.text, notice.level, {
    autoClose: notice.level === 'info' ? 10000 : false,
    actions: toast.more
      ? [{ label: 'Details', callback: () => app.shell.activateById(PANEL_ID) }]
      : [],
    data: { source: 'ipysession', kind: notice.kind, text: notice.text } as JSONObject
  });
}

async function askConflict(link: SessionLink, conflict: IConflict): Promise<void> {
  const choices: Array<[IConflict['configured'], string]> = [
    ['fork', 'Fork'],
    ['readonly', 'Read-only'],
    ['takeover', 'Take over']
  ];
  const buttons = choices.map(([choice, label]) =>
    choice === conflict.configured
      ? Dialog.okButton({ label, caption: 'configured (on_conflict)' })
      : Dialog.createButton({ label, accept: false, displayType: 'default' })
  );
  const holder = conflict.holder ?? 'another kernel';
  const taken = conflict.taken === 'readonly' ? 'read-only' : 'as a fork';
  const result = await showDialog({
    title: 'Session in use',
    body:
      `Session '${conflict.session}' is in use by ${holder}. This kernel opened it ${taken}. ` +
      'Fork: keep a copy saved as a new session. Read-only: never save to it. ' +
      'Take over: this kernel saves it; the other continues as a fork.',
    buttons,
    defaultButton: choices.findIndex(([choice]) => choice === conflict.configured),
    hasClose: false
  });
  const index = buttons.findIndex(b => b.label === result.button.label);
  const choice = index >= 0 ? choices[index][0] : conflict.configured;
  const reply = await link.request({ action: 'conflict', choice });
  if (reply.status !== 'ok') {
    Notification.error(`ipysession: ${reply.reason}`, { autoClose: false });
  }
}

/** A dialog body of one paragraph per line (a string body would run them together). */
function paragraphs(lines: string[]): Widget {
  const node = document.createElement('div');
  node.className = 'jp-ipysession-dialog';
  for (const line of lines) {
    const paragraph = document.createElement('p');
    paragraph.textContent = line;
    node.appendChild(paragraph);
  }
  return new Widget({ node });
}

/**
 * Values the restore left out because rebuilding them runs cells with side effects (writing
 * files, the network, shell commands): asked once per kernel, "Not now" leaves them to
 * `%session replay NAME`. Runs nothing unless the user says yes.
 */
async function askReplay(link: SessionLink, groups: IReplayGroup[]): Promise<void> {
  const replay = Dialog.okButton({ label: 'Replay' });
  const result = await showDialog({
    title: 'Rebuild values by replaying their cells?',
    body: paragraphs(replayDialogLines(groups)),
    buttons: [Dialog.cancelButton({ label: 'Not now' }), replay],
    defaultButton: 0
  });
  if (!result.button.accept) {
    return;
  }
  const names = ([] as string[]).concat(...groups.map(group => group.names));
  const reply = await link.request({ action: 'replay', names });
  if (reply.status !== 'ok') {
    Notification.error(`ipysession: ${reply.reason}`, { autoClose: false });
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'ipysession:plugin',
  description: 'ipysession: the session survives kernel restarts; its state, panel and commands.',
  autoStart: true,
  requires: [INotebookTracker, ISessionContextDialogs],
  optional: [IStatusBar, ICommandPalette, IMainMenu, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    dialogs: ISessionContextDialogs,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null,
    mainMenu: IMainMenu | null,
    labShell: ILabShell | null
  ) => {
    // benchmarks/lab_load.py reads this measure: what activating the plugin costs the load.
    performance.mark('ipysession:activate-start');
    const links = new Map<ISessionContext, SessionLink>();
    const panel = new SessionPanel();
    app.shell.add(panel, 'right', { rank: 900 });

    const item = new StatusItem(() => app.shell.activateById(PANEL_ID));
    // "saved N s ago" keeps counting; cheap: one text update every 5 s.
    window.setInterval(() => item.update(), 5000);

    const current = (): SessionLink | null => {
      const widget = tracker.currentWidget;
      return widget ? links.get(widget.sessionContext) ?? null : null;
    };

    tracker.widgetAdded.connect((_, notebook) => {
      const link = new SessionLink(notebook.sessionContext, {
        get: () => notebook.model?.getMetadata(METADATA_KEY) as JSONValue | undefined,
        set: value => notebook.model?.setMetadata(METADATA_KEY, value)
      });
      links.set(notebook.sessionContext, link);
      link.notices.connect((_, notice) => notify(app, link, notice, panel));
      link.changed.connect(() => {
        const conflict = link.model.conflictToAsk();
        if (conflict) {
          link.model.conflictAsked = true;
          void askConflict(link, conflict);
          return;
        }
        const replay = link.model.replayToAsk();
        if (replay) {
          link.model.replayAsked = true;
          void askReplay(link, replay);
        }
      });
      keepLayout(app, notebook, link, panel, labShell);
      notebook.disposed.connect(() => {
        links.delete(notebook.sessionContext);
        link.dispose();
      });
      if (tracker.currentWidget === notebook) {
        item.setLink(link);
        panel.setLink(link);
      }
    });
    tracker.currentChanged.connect(() => {
      item.setLink(current());
      panel.setLink(current());
      statusBar && item.update();
    });

    if (statusBar) {
      statusBar.registerStatusItem('ipysession:status', {
        item,
        align: 'left',
        rank: 5,
        isActive: () => !!item.link && item.link.model.phase !== 'absent',
        activeStateChanged: undefined
      });
    }

    // The restart dialog says whether the session comes back, and offers to discard it.
    const restart = dialogs.restart.bind(dialogs);
    dialogs.restart = async (context, options) => {
      const link = links.get(context);
      const body = link ? restartDialogBody(link.model) : null;
      if (!link || body === null) {
        return restart(context, options);
      }
      const discard = Dialog.warnButton({ label: 'Restart and Discard Session' });
      const keep = Dialog.okButton({ label: 'Restart' });
      const result = await showDialog({
        title: 'Restart Kernel?',
        body,
        buttons: [Dialog.cancelButton(), discard, keep],
        defaultButton: 2
      });
      if (result.button.label === keep.label) {
        await context.restartKernel();
        return true;
      }
      if (result.button.label === discard.label) {
        await restartDiscarding(link);
        return true;
      }
      return false;
    };

    const restartDiscarding = async (link: SessionLink) => {
      const reply = await link.request({ action: 'discard' });
      if (reply.status !== 'ok') {
        Notification.error(`ipysession: ${reply.reason}`, { autoClose: false });
        return;
      }
      await link.context.restartKernel();
      Notification.info(
        `ipysession: session discarded${reply.path ? ` (${reply.path} removed)` : ''}; ` +
          'the new kernel starts empty.',
        { autoClose: 10000 }
      );
    };

    const enabled = () => {
      const link = current();
      return !!link && link.model.phase === 'ready';
    };
    app.commands.addCommand(KEEP, {
      label: 'Restart Kernel and Keep Session',
      caption: 'Restart the kernel; ipysession restores the session in the new one',
      isEnabled: enabled,
      execute: async () => {
        await current()?.context.restartKernel();
      }
    });
    app.commands.addCommand(DISCARD, {
      label: 'Restart Kernel and Discard Session',
      caption: 'Delete the saved session and restart the kernel empty',
      isEnabled: enabled,
      execute: async () => {
        const link = current();
        if (!link) {
          return;
        }
        const answer = await showDialog({
          title: 'Discard the session?',
          body:
            `The saved session '${link.model.state?.session_full}' is deleted and the kernel ` +
            'restarts empty. This cannot be undone.',
          buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Discard and Restart' })]
        });
        if (answer.button.accept) {
          await restartDiscarding(link);
        }
      }
    });
    app.commands.addCommand(OPEN_PANEL, {
      label: 'Show Session Panel',
      execute: () => app.shell.activateById(PANEL_ID)
    });
    for (const command of [KEEP, DISCARD, OPEN_PANEL]) {
      palette?.addItem({ command, category: 'Kernel' });
    }
    mainMenu?.kernelMenu.addGroup([{ command: KEEP }, { command: DISCARD }], 1);
    performance.measure('ipysession:activate', 'ipysession:activate-start');
  }
};

export default plugin;
