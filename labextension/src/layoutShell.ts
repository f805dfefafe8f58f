/**
 * The notebook's layout on the real page: read it when it changes and keep it with the
 * session through the comm; re-apply it once per page (collapsed cells, active cell, scroll,
 * the session panel and its width, the linked consoles and output views beside the notebook).
 * The decisions are in layout.ts; this file only reads and drives JupyterLab.
 */
import { ILabShell, JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { JSONObject } from '@lumino/coreutils';
import { SplitPanel, Widget } from '@lumino/widgets';

import {
  CompanionKind,
  ICompanion,
  ILayout,
  IPageSnapshot,
  IRect,
  buildLayout,
  companionKey,
  companionsToCreate,
  readLayout,
  sizesForWidth
} from './layout';
import { SessionLink } from './link';

/** One save at most per this many ms of changes (scrolling fires many events). */
const SAVE_DELAY = 2000;

interface IFoundCompanion {
  widget: Widget;
  kind: CompanionKind;
  cell?: number;
}

/** The duck-typed parts of a ConsolePanel (@jupyterlab/console is not a dependency). */
interface IConsoleLike {
  console?: { sessionContext?: { path?: string } };
}

/** The parts of JupyterLab's LinkedOutputView ("Create New View for Cell Output"). */
interface IOutputViewLike {
  path?: string;
  index?: number;
}

function rectOf(node: Element): IRect {
  const { left, top, width, height } = node.getBoundingClientRect();
  return { left, top, width, height };
}

/** The tab bar that holds a main-area widget's tab (the shell tags tabs with the widget id). */
function tabBarOf(widget: Widget): Element | null {
  const tab = document.querySelector(`.lm-TabBar-tab[data-id="${CSS.escape(widget.id)}"]`);
  return tab?.closest('.lm-TabBar') ?? null;
}

/** The linked consoles and output views of `panel` that the main area shows. */
function companionsOf(app: JupyterFrontEnd, panel: NotebookPanel): IFoundCompanion[] {
  const path = panel.context.path;
  const found: IFoundCompanion[] = [];
  for (const widget of app.shell.widgets('main')) {
    if (widget === panel || widget.isDisposed) {
      continue;
    }
    const console = (widget as IConsoleLike).console;
    if (widget.hasClass('jp-ConsolePanel') && console?.sessionContext?.path === path) {
      found.push({ widget, kind: 'console' });
      continue;
    }
    if (widget instanceof MainAreaWidget && widget.content.hasClass('jp-LinkedOutputView')) {
      const view = widget.content as IOutputViewLike;
      if (view.path === path && typeof view.index === 'number' && view.index >= 0) {
        found.push({ widget, kind: 'output', cell: view.index });
      }
    }
  }
  return found;
}

/** The child of the shell's horizontal split that holds `widget` (the right side area). */
function sideArea(widget: Widget): { area: Widget; split: SplitPanel } | null {
  let area: Widget | null = widget;
  while (area?.parent) {
    const parent: Widget = area.parent;
    if (parent instanceof SplitPanel && parent.orientation === 'horizontal') {
      return { area, split: parent };
    }
    area = parent;
  }
  return null;
}

function readPage(app: JupyterFrontEnd, panel: NotebookPanel, side: Widget): IPageSnapshot {
  const notebook = panel.content;
  const notebookBar = tabBarOf(panel);
  const open = side.isVisible;
  return {
    activeCellIndex: notebook.activeCellIndex,
    scrollTop: notebook.outerNode.scrollTop,
    cells: notebook.widgets.map(cell => ({
      inputHidden: cell.inputHidden,
      // Only code cells have outputs (CodeCell.outputHidden).
      outputHidden: (cell as { outputHidden?: boolean }).outputHidden === true
    })),
    sidePanel: {
      open,
      width: open ? sideArea(side)?.area.node.getBoundingClientRect().width : undefined
    },
    notebook: rectOf(panel.node),
    companions: companionsOf(app, panel).map(({ widget, kind, cell }) => {
      const bar = tabBarOf(widget);
      // A tab behind another is not drawn: its tab bar says where its area is.
      const rect = widget.isVisible || !bar ? rectOf(widget.node) : rectOf(bar);
      return { kind, cell, rect, sameTabBar: !!bar && bar === notebookBar };
    })
  };
}

/** Wait for the browser to lay the page out (sizes are known after it). */
function nextFrame(): Promise<void> {
  return new Promise(resolve => requestAnimationFrame(() => resolve()));
}

/**
 * Give the right side area `width` px by setting the relative sizes of the shell's horizontal
 * split (LabShell has no public call for one side area's width; SplitPanel's is public).
 */
function setSideWidth(side: Widget, width: number): void {
  const found = sideArea(side);
  if (!found) {
    return;
  }
  const { area, split } = found;
  const sizes = sizesForWidth(
    split.relativeSizes(),
    split.widgets.indexOf(area),
    width,
    split.node.getBoundingClientRect().width
  );
  if (sizes) {
    split.setRelativeSizes(sizes);
  }
}

async function createCompanion(
  app: JupyterFrontEnd,
  panel: NotebookPanel,
  companion: ICompanion
): Promise<void> {
  const path = panel.context.path;
  if (companion.kind === 'console') {
    // What "New Console for Notebook" runs, placed where the kept layout had it.
    await app.commands.execute('console:create', {
      path,
      preferredLanguage: panel.context.model.defaultKernelLanguage,
      ref: panel.id,
      insertMode: companion.mode,
      activate: false,
      type: 'Linked Console'
    });
    return;
  }
  const before = new Set(companionsOf(app, panel).map(found => found.widget));
  // The command always opens the view below the notebook; it is moved after when kept elsewhere.
  await app.commands.execute('notebook:create-output-view', { path, index: companion.cell! });
  if (companion.mode === 'split-bottom') {
    return;
  }
  await panel.context.ready;
  const created = companionsOf(app, panel).find(
    found => !before.has(found.widget) && companionKey(found) === companionKey(companion)
  );
  if (created) {
    app.shell.add(created.widget, 'main', { ref: panel.id, mode: companion.mode });
  }
}

async function applyLayout(
  app: JupyterFrontEnd,
  panel: NotebookPanel,
  side: Widget,
  layout: ILayout
): Promise<void> {
  await app.restored;
  const notebook = panel.content;
  const cells = notebook.widgets;
  for (const index of layout.collapsed.inputs) {
    if (index < cells.length) {
      cells[index].inputHidden = true;
    }
  }
  for (const index of layout.collapsed.outputs) {
    const cell = cells[index] as { outputHidden?: boolean } | undefined;
    if (cell && cell.outputHidden !== undefined) {
      cell.outputHidden = true;
    }
  }
  if (layout.activeCellIndex !== undefined && layout.activeCellIndex < cells.length) {
    notebook.activeCellIndex = layout.activeCellIndex;
  }
  const present = companionsOf(app, panel);
  for (const companion of companionsToCreate(layout.companions, present)) {
    try {
      await createCompanion(app, panel, companion);
    } catch (error) {
      console.warn('ipysession: could not re-open a companion of the notebook', error);
    }
  }
  app.shell.activateById(panel.id);
  if (layout.sidePanel.open) {
    app.shell.activateById(side.id);
  }
  // Sizes and heights are known once the page is laid out with the cells collapsed.
  await nextFrame();
  if (layout.sidePanel.open && layout.sidePanel.width !== undefined) {
    setSideWidth(side, layout.sidePanel.width);
  }
  if (layout.scrollTop !== undefined) {
    // The notebook scrolls its outer node (a windowed list), after the active cell's own scroll.
    await nextFrame();
    notebook.scrollTo(layout.scrollTop);
  }
}

/**
 * Keep `panel`'s layout with its session: save it (debounced, only when it changed) and
 * re-apply the kept one when the link first fetches it in this page.
 */
export function keepLayout(
  app: JupyterFrontEnd,
  panel: NotebookPanel,
  link: SessionLink,
  side: Widget,
  labShell: ILabShell | null
): void {
  let timer = 0;
  let last = '';
  // While the kept layout is being re-applied, what the page shows is not the user's layout.
  let applying = false;
  const save = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => {
      if (applying || panel.isDisposed || link.model.phase !== 'ready') {
        return;
      }
      const layout = buildLayout(readPage(app, panel, side));
      const encoded = JSON.stringify(layout);
      if (layout === null || encoded === last) {
        return;
      }
      last = encoded;
      link.request({ action: 'save', layout: layout as unknown as JSONObject }).catch(() => {
        last = '';
      });
    }, SAVE_DELAY);
  };
  link.layoutFetched.connect((_, value) => {
    const layout = readLayout(value);
    if (!layout) {
      return;
    }
    applying = true;
    void panel.revealed
      .then(() => applyLayout(app, panel, side, layout))
      .catch(error => console.warn('ipysession: could not re-apply the layout', error))
      .then(() => {
        applying = false;
        // Said on the page once re-applied, for whoever waits on it (the browser tests).
        panel.node.dataset.ipysessionLayout = 'applied';
        save();
      });
  });
  // Collapsing a cell writes its metadata (source_hidden, collapsed): watch every cell's.
  const watchCells = () => {
    const cells = panel.model?.cells;
    for (let i = 0; cells && i < cells.length; i++) {
      cells.get(i).metadataChanged.connect(save);
    }
    save();
  };
  void panel.context.ready.then(() => {
    watchCells();
    panel.model?.cells.changed.connect(watchCells);
  });
  panel.content.activeCellChanged.connect(save);
  panel.content.outerNode.addEventListener('scroll', save, { passive: true });
  labShell?.layoutModified.connect(save);
  panel.disposed.connect(() => {
    window.clearTimeout(timer);
    labShell?.layoutModified.disconnect(save);
  });
}
