/**
 * The notebook's layout kept with its session: the JSON the extension stores through the comm
 * (docs/frontend-protocol.md "Layout"), built from and re-applied to plain descriptions of the
 * page. No JupyterLab import here, so all of it runs under jest; layoutShell.ts reads and
 * drives the real page.
 */

/** Where a companion sits relative to its notebook: the DockPanel insert modes. */
export type Placement = 'split-right' | 'split-bottom' | 'split-left' | 'split-top' | 'tab-after';

const PLACEMENTS: readonly Placement[] = [
  'split-right',
  'split-bottom',
  'split-left',
  'split-top',
  'tab-after'
];

export type CompanionKind = 'console' | 'output';

/** A widget in the main area that belongs to the notebook: a linked console, an output view. */
export interface ICompanion {
  kind: CompanionKind;
  /** The cell an output view shows; absent for a console. */
  cell?: number;
  mode: Placement;
}

export interface ICollapsed {
  /** Indices of the cells whose input is hidden. */
  inputs: number[];
  /** Indices of the cells whose outputs are hidden. */
  outputs: number[];
}

export interface ISidePanel {
  open: boolean;
  /** Width in px of the right side area when open; absent when unknown. */
  width?: number;
}

/** The layout JSON, version 2 (version 1 had activeCellIndex, scrollTop, sessionPanel). */
export interface ILayout {
  version: 2;
  activeCellIndex?: number;
  scrollTop?: number;
  collapsed: ICollapsed;
  sidePanel: ISidePanel;
  companions: ICompanion[];
}

export interface IRect {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface ICellState {
  inputHidden: boolean;
  outputHidden: boolean;
}

/** A companion as the page shows it: its notebook-relative identity and where it is drawn. */
export interface ISeenCompanion {
  kind: CompanionKind;
  cell?: number;
  /** Its rectangle when shown, else its tab bar's (a tab behind another has no size). */
  rect: IRect;
  /** In the same tab bar as the notebook. */
  sameTabBar: boolean;
}

/** What layoutShell.ts reads from the page, with no JupyterLab type in it. */
export interface IPageSnapshot {
  activeCellIndex: number;
  scrollTop: number;
  cells: ICellState[];
  sidePanel: ISidePanel;
  notebook: IRect;
  companions: ISeenCompanion[];
}

/** Rectangles closer than this (px) count as touching: split handles and borders. */
const TOLERANCE = 8;

/** Where `other` sits relative to `notebook`, from their rectangles on the page. */
export function placementOf(notebook: IRect, other: IRect, sameTabBar: boolean): Placement {
  if (sameTabBar) {
    return 'tab-after';
  }
  const right = notebook.left + notebook.width;
  const bottom = notebook.top + notebook.height;
  if (other.left >= right - TOLERANCE) {
    return 'split-right';
  }
  if (other.top >= bottom - TOLERANCE) {
    return 'split-bottom';
  }
  if (other.left + other.width <= notebook.left + TOLERANCE) {
    return 'split-left';
  }
  if (other.top + other.height <= notebook.top + TOLERANCE) {
    return 'split-top';
  }
  return 'tab-after';
}

function isEmpty(rect: IRect): boolean {
  return rect.width <= 0 || rect.height <= 0;
}

function indicesWhere(cells: ICellState[], hidden: (cell: ICellState) => boolean): number[] {
  const indices: number[] = [];
  cells.forEach((cell, index) => {
    if (hidden(cell)) {
      indices.push(index);
    }
  });
  return indices;
}

/**
 * The layout to keep, or null when the notebook is not drawn (a tab behind another): then
 * nothing can be placed relative to it, and the kept layout stays as it was.
 */
export function buildLayout(page: IPageSnapshot): ILayout | null {
  if (isEmpty(page.notebook)) {
    return null;
  }
  const sidePanel: ISidePanel = { open: page.sidePanel.open };
  if (page.sidePanel.open && page.sidePanel.width !== undefined && page.sidePanel.width > 0) {
    sidePanel.width = Math.round(page.sidePanel.width);
  }
  return {
    version: 2,
    activeCellIndex: page.activeCellIndex,
    scrollTop: Math.round(page.scrollTop),
    collapsed: {
      inputs: indicesWhere(page.cells, cell => cell.inputHidden),
      outputs: indicesWhere(page.cells, cell => cell.outputHidden)
    },
    sidePanel,
    companions: page.companions.map(seen => {
      const companion: ICompanion = {
        kind: seen.kind,
        mode: placementOf(page.notebook, seen.rect, seen.sameTabBar)
      };
      if (seen.kind === 'output' && seen.cell !== undefined) {
        companion.cell = seen.cell;
      }
      return companion;
    })
  };
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

function indices(value: unknown): number[] {
  return Array.isArray(value) ? value.filter(isIndex) : [];
}

function readCompanion(value: unknown): ICompanion | null {
  if (!value || typeof value !== 'object') {
    return null;
  }
  const { kind, cell, mode } = value as { [key: string]: unknown };
  if (kind !== 'console' && kind !== 'output') {
    return null;
  }
  if (kind === 'output' && !isIndex(cell)) {
    return null;
  }
  const placement = PLACEMENTS.includes(mode as Placement) ? (mode as Placement) : 'split-bottom';
  return kind === 'output' ? { kind, cell: cell as number, mode: placement } : { kind, mode: placement };
}

/**
 * The kept layout, read leniently: version 2, or version 1 (`sessionPanel: true|false`), or
 * null when it is not a layout this extension wrote. Unknown or malformed parts are dropped.
 */
export function readLayout(value: unknown): ILayout | null {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    return null;
  }
  const kept = value as { [key: string]: unknown };
  const layout: ILayout = {
    version: 2,
    collapsed: { inputs: [], outputs: [] },
    sidePanel: { open: false },
    companions: []
  };
  if (isIndex(kept.activeCellIndex)) {
    layout.activeCellIndex = kept.activeCellIndex;
  }
  if (typeof kept.scrollTop === 'number' && Number.isFinite(kept.scrollTop)) {
    layout.scrollTop = Math.max(0, kept.scrollTop);
  }
  const collapsed = kept.collapsed as { [key: string]: unknown } | undefined;
  if (collapsed && typeof collapsed === 'object') {
    layout.collapsed = { inputs: indices(collapsed.inputs), outputs: indices(collapsed.outputs) };
  }
  const side = kept.sidePanel;
  if (typeof kept.sessionPanel === 'boolean') {
    // Version 1: open or not, no width.
    layout.sidePanel = { open: kept.sessionPanel };
  }
  if (side && typeof side === 'object') {
    const { open, width } = side as { [key: string]: unknown };
    layout.sidePanel = { open: open === true };
    if (open === true && typeof width === 'number' && Number.isFinite(width) && width > 0) {
      layout.sidePanel.width = width;
    }
  }
  if (Array.isArray(kept.companions)) {
    for (const item of kept.companions) {
      const companion = readCompanion(item);
      if (companion) {
        layout.companions.push(companion);
      }
    }
  }
  return layout;
}

/** Companions are the same when they are the same kind for the same cell. */
export function companionKey(companion: { kind: CompanionKind; cell?: number }): string {
  return companion.kind === 'output' ? `output:${companion.cell}` : 'console';
}

/**
 * The companions to create: those wanted that the page does not already show, counted (two
 * kept consoles and one on the page: one more), so a companion is never created twice.
 */
export function companionsToCreate(
  wanted: ICompanion[],
  present: Array<{ kind: CompanionKind; cell?: number }>
): ICompanion[] {
  const shown = new Map<string, number>();
  for (const companion of present) {
    const key = companionKey(companion);
    shown.set(key, (shown.get(key) ?? 0) + 1);
  }
  return wanted.filter(companion => {
    const key = companionKey(companion);
    const count = shown.get(key) ?? 0;
    if (count > 0) {
      shown.set(key, count - 1);
      return false;
    }
    return true;
  });
}

/**
 * Relative sizes for a split panel that give child `index` `width` px of `total` px, the
 * other children keeping their proportions among themselves. Null when it cannot be done
 * (no room, unknown child): the split is left as it is.
 */
export function sizesForWidth(
  sizes: number[],
  index: number,
  width: number,
  total: number
): number[] | null {
  if (index < 0 || index >= sizes.length || total <= 0 || width <= 0) {
    return null;
  }
  const share = Math.min(width / total, 0.9);
  const others = sizes.reduce((sum, size, i) => (i === index ? sum : sum + size), 0);
  if (others <= 0) {
    return null;
  }
  return sizes.map((size, i) => (i === index ? share : ((1 - share) * size) / others));
}
