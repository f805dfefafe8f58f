import {
  ICompanion,
  IPageSnapshot,
  IRect,
  buildLayout,
  companionsToCreate,
  placementOf,
  readLayout,
  sizesForWidth
} from '../layout';

// The notebook fills the left of a 1400 x 900 main area.
const NOTEBOOK: IRect = { left: 0, top: 30, width: 700, height: 500 };

function page(overrides: Partial<IPageSnapshot> = {}): IPageSnapshot {
  return {
    activeCellIndex: 3,
    scrollTop: 120.4,
    cells: [
      { inputHidden: false, outputHidden: false },
      { inputHidden: true, outputHidden: false },
      { inputHidden: false, outputHidden: true },
      { inputHidden: true, outputHidden: true }
    ],
    sidePanel: { open: true, width: 301.6 },
    notebook: NOTEBOOK,
    companions: [],
    ...overrides
  };
}

describe('placementOf', () => {
  it('says right of, below, left of, above the notebook from the rectangles', () => {
    const right = { left: 704, top: 30, width: 600, height: 500 };
    const below = { left: 0, top: 534, width: 700, height: 300 };
    const left = { left: -400, top: 30, width: 396, height: 500 };
    const above = { left: 0, top: -300, width: 700, height: 326 };
    expect(placementOf(NOTEBOOK, right, false)).toBe('split-right');
    expect(placementOf(NOTEBOOK, below, false)).toBe('split-bottom');
    expect(placementOf(NOTEBOOK, left, false)).toBe('split-left');
    expect(placementOf(NOTEBOOK, above, false)).toBe('split-top');
  });

  it('says a tab beside the notebook when they share a tab bar or overlap', () => {
    expect(placementOf(NOTEBOOK, { left: 0, top: 0, width: 0, height: 0 }, true)).toBe(
      'tab-after'
    );
    expect(placementOf(NOTEBOOK, { ...NOTEBOOK }, false)).toBe('tab-after');
  });

  it('places a hidden tab from its tab bar at the top of its area', () => {
    // The console is a tab behind another below the notebook: only its tab bar is drawn.
    const bar = { left: 0, top: 532, width: 700, height: 28 };
    expect(placementOf(NOTEBOOK, bar, false)).toBe('split-bottom');
  });
});

describe('buildLayout', () => {
  it('writes version 2: collapsed cells, the side panel width, rounded numbers', () => {
    expect(buildLayout(page())).toEqual({
      version: 2,
      activeCellIndex: 3,
      scrollTop: 120,
      collapsed: { inputs: [1, 3], outputs: [2, 3] },
      sidePanel: { open: true, width: 302 },
      companions: []
    });
  });

  it('keeps no width for a closed side panel', () => {
    const layout = buildLayout(page({ sidePanel: { open: false, width: 300 } }));
    expect(layout?.sidePanel).toEqual({ open: false });
  });

  it('describes each console and output view and where it is', () => {
    const layout = buildLayout(
      page({
        companions: [
          {
            kind: 'console',
            rect: { left: 0, top: 534, width: 700, height: 300 },
            sameTabBar: false
          },
          {
            kind: 'output',
            cell: 7,
            rect: { left: 704, top: 30, width: 600, height: 500 },
            sameTabBar: false
          },
          { kind: 'output', cell: 2, rect: { left: 0, top: 0, width: 0, height: 0 }, sameTabBar: true }
        ]
      })
    );
    expect(layout?.companions).toEqual([
      { kind: 'console', mode: 'split-bottom' },
      { kind: 'output', cell: 7, mode: 'split-right' },
      { kind: 'output', cell: 2, mode: 'tab-after' }
    ]);
  });

  it('keeps nothing while the notebook is not drawn (a tab behind another)', () => {
    expect(buildLayout(page({ notebook: { left: 0, top: 0, width: 0, height: 0 } }))).toBeNull();
  });

  it('writes what it reads back', () => {
    const layout = buildLayout(
      page({
        companions: [
          { kind: 'console', rect: { left: 704, top: 30, width: 9, height: 9 }, sameTabBar: false }
        ]
      })
    );
    expect(readLayout(JSON.parse(JSON.stringify(layout)))).toEqual(layout);
  });
});

describe('readLayout', () => {
  it('reads version 1 (the fields kept before collapsed cells and companions)', () => {
    expect(readLayout({ activeCellIndex: 12, scrollTop: 340, sessionPanel: true })).toEqual({
      version: 2,
      activeCellIndex: 12,
      scrollTop: 340,
      collapsed: { inputs: [], outputs: [] },
      sidePanel: { open: true },
      companions: []
    });
  });

  it('drops what it does not understand instead of failing', () => {
    const layout = readLayout({
      activeCellIndex: -1,
      scrollTop: 'far',
      collapsed: { inputs: [1, 'x', 2.5, -3, 4], outputs: 'all' },
      sidePanel: { open: true, width: -5 },
      companions: [
        { kind: 'console', mode: 'split-right' },
        { kind: 'output' },
        { kind: 'terminal', mode: 'split-right' },
        { kind: 'output', cell: 4, mode: 'sideways' },
        null
      ]
    });
    expect(layout).toEqual({
      version: 2,
      collapsed: { inputs: [1, 4], outputs: [] },
      sidePanel: { open: true },
      companions: [
        { kind: 'console', mode: 'split-right' },
        { kind: 'output', cell: 4, mode: 'split-bottom' }
      ]
    });
  });

  it('is null for a value this extension did not write', () => {
    expect(readLayout(null)).toBeNull();
    expect(readLayout('layout')).toBeNull();
    expect(readLayout([1, 2])).toBeNull();
  });
});

describe('companionsToCreate', () => {
  const console1: ICompanion = { kind: 'console', mode: 'split-bottom' };
  const output3: ICompanion = { kind: 'output', cell: 3, mode: 'split-right' };

  it('creates every kept companion on an empty page', () => {
    expect(companionsToCreate([console1, output3], [])).toEqual([console1, output3]);
  });

  it('never creates one the page already shows, wherever it is', () => {
    expect(companionsToCreate([console1, output3], [{ kind: 'output', cell: 3 }])).toEqual([
      console1
    ]);
    expect(
      companionsToCreate([console1, output3], [{ kind: 'console' }, { kind: 'output', cell: 3 }])
    ).toEqual([]);
  });

  it('counts: two kept consoles and one shown make one more; another cell is another view', () => {
    const second: ICompanion = { kind: 'console', mode: 'split-right' };
    expect(companionsToCreate([console1, second], [{ kind: 'console' }])).toEqual([second]);
    expect(companionsToCreate([output3], [{ kind: 'output', cell: 4 }])).toEqual([output3]);
  });
});

describe('sizesForWidth', () => {
  it('gives the side area its width and keeps the others in proportion', () => {
    const sizes = sizesForWidth([0.2, 0.6, 0.2], 2, 300, 1500)!;
    expect(sizes[2]).toBeCloseTo(0.2);
    expect(sizes[0] / sizes[1]).toBeCloseTo(0.2 / 0.6);
    expect(sizes.reduce((a, b) => a + b, 0)).toBeCloseTo(1);
    const wider = sizesForWidth([0.1, 0.9, 0], 2, 450, 1500)!;
    expect(wider[2]).toBeCloseTo(0.3);
    expect(wider[0] / wider[1]).toBeCloseTo(0.1 / 0.9);
  });

  it('never takes the whole split, and leaves it alone when it cannot compute', () => {
    expect(sizesForWidth([0.2, 0.6, 0.2], 2, 5000, 1000)![2]).toBeCloseTo(0.9);
    expect(sizesForWidth([0.2, 0.6, 0.2], 5, 300, 1000)).toBeNull();
    expect(sizesForWidth([0.2, 0.6, 0.2], 2, 300, 0)).toBeNull();
    expect(sizesForWidth([0, 0, 1], 2, 300, 1000)).toBeNull();
  });
});
