/**
 * Deploying the active notebook cell, and the "changed since deploy" marks.
 *
 * A cell is captured in the notebook's own kernel (its live namespace holds the names the
 * cell uses), then the server extension builds, tests, pushes and deploys the bundle while
 * the model follows the jobs. Provenance lands in `cell.metadata.faas` and the notebook is
 * saved. One cell per function name per notebook: deploying another cell as a name a cell
 * already deployed asks first.
 */
import { Dialog, InputDialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';

import { faasMetadata, magicName, provenanceOf } from './cells';
import { sha256Hex } from './hash';
import { captureInKernel, ICaptureAnswer, ICaptureOptions, IClaimOwner, NameTaken } from './kernel';
import { APIError, errorMessage, jsonBody, requestAPI } from './request';
import { IActiveCellStatus, IFunctionsModel, IProvenance, METADATA_KEY } from './tokens';

/** Function names, checked here before asking the server why one is refused. */
const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** How long to wait after an edit before re-hashing cells, in ms. */
const MARK_DELAY_MS = 250;

/** CSS classes on marked cells. */
const CELL_CLASS = 'jp-faas-cell';
const CHANGED_CLASS = 'jp-faas-changed';

/** The CSS custom property holding a marked cell's label. */
const LABEL_PROPERTY = '--jp-faas-cell-label';

const DIALOG_TITLE = 'Deploy cell as function';

/** True when the cell starts with `%%faas`. */
function isMagicCell(source: string): boolean {
  return source.startsWith('%%faas');
}

/**
 * Runs the "Deploy cell as function" command and keeps every open notebook's cells marked
 * with their deployment state.
 */
export class CellDeployer implements IDisposable {
  constructor(
    private readonly tracker: INotebookTracker,
    private readonly model: IFunctionsModel
  ) {
    tracker.widgetAdded.connect(this._onWidgetAdded, this);
    tracker.activeCellChanged.connect(this._scheduleAll, this);
    tracker.currentChanged.connect(this._scheduleAll, this);
    model.changed.connect(this._onModelChanged, this);
    tracker.forEach(panel => this._watch(panel));
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** True when the current notebook has an active code cell and no deploy is running. */
  canDeploy(): boolean {
    const cell = this.tracker.activeCell;
    return !!cell && cell.model.type === 'code' && this.model.deployment?.status !== 'running';
  }

  /** Deploy the active cell; failures are shown in the sidebar (and a dialog before jobs start). */
  async deployActiveCell(): Promise<void> {
    const panel = this.tracker.currentWidget;
    const cell = this.tracker.activeCell;
    if (!panel || !cell || cell.model.type !== 'code') {
      await showErrorMessage(
        DIALOG_TITLE,
        'Select a code cell in a notebook first: a `%%faas NAME` cell or a cell that defines `main`.'
      );
      return;
    }
    const source = cell.model.sharedModel.getSource();
    const name = await this._functionName(cell, source);
    if (name === null) {
      return;
    }
    const kernel = panel.sessionContext.session?.kernel;
    if (!kernel) {
      await showErrorMessage(
        DIALOG_TITLE,
        'This notebook has no running kernel. Start one (Kernel ▸ Restart Kernel…) and deploy ' +
          'again: the cell is captured in the kernel, with the names earlier cells defined.'
      );
      return;
    }
    const cellHash = await sha256Hex(source);
    const rival = this._rivalCell(panel, cell, name);
    const owner = rival
      ? `cell ${panel.content.widgets.indexOf(rival) + 1} of ${panel.context.path}`
      : await this._claimOwner(panel, cell, name, cellHash);
    const replace = owner !== null;
    if (replace && !(await this._askToReplace(name, owner))) {
      return;
    }
    const testInput = (faasMetadata(cell).test_input as Record<string, unknown> | undefined) ?? null;
    const options: ICaptureOptions = { replace, cellId: cell.model.id, notebook: panel.context.path, testInput };
    this.model.beginDeployment(name);
    const answer = await this._capture(kernel, name, source, options);
    if (answer === null) {
      return;
    }
    // Recorded before the jobs, so a failed test still finds this cell (and its test input).
    if (!cell.isDisposed && !provenanceOf(cell)) {
      cell.model.setMetadata(METADATA_KEY, { ...faasMetadata(cell), name });
    }
    let record;
    try {
      record = await this.model.deployBundle(answer.name ?? name, answer.bundle, testInput);
    } catch {
      // The model shows the failure in the sidebar's progress view.
      return;
    }
    const provenance: IProvenance = {
      name: record.name,
      image: record.image,
      digest: record.digest,
      server: record.server,
      namespace: record.namespace,
      version: record.version,
      time: record.time,
      cell_sha256: cellHash,
      cell_id: cell.model.id,
      notebook: panel.context.path
    };
    if (testInput) {
      provenance.test_input = testInput;
    }
    // The cell may have been deleted while the deploy ran.
    if (!cell.isDisposed) {
      cell.model.setMetadata(METADATA_KEY, provenance);
    }
    // The replaced cell no longer stands for the function.
    if (rival && !rival.isDisposed) {
      rival.model.deleteMetadata(METADATA_KEY);
    }
    await this._save(panel);
    this._schedule(panel);
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    for (const timer of this._timers.values()) {
      window.clearTimeout(timer);
    }
    this._timers.clear();
    this.tracker.widgetAdded.disconnect(this._onWidgetAdded, this);
    this.tracker.activeCellChanged.disconnect(this._scheduleAll, this);
    this.tracker.currentChanged.disconnect(this._scheduleAll, this);
    this.model.changed.disconnect(this._onModelChanged, this);
    this.tracker.forEach(panel => panel.content.modelContentChanged.disconnect(this._onContent, this));
  }

  /**
   * The function name: a redeploy of a known cell takes its recorded name (one click), a
   * `%%faas NAME` cell its own; otherwise the name is asked for.
   */
  private async _functionName(cell: Cell, source: string): Promise<string | null> {
    if (isMagicCell(source)) {
      const name = magicName(source);
      if (name === null) {
        await showErrorMessage(
          DIALOG_TITLE,
          'This `%%faas` cell names no function: write it as `%%faas NAME` (for example `%%faas peaks`).'
        );
      }
      return name;
    }
    const recorded = faasMetadata(cell).name;
    if (typeof recorded === 'string' && NAME_PATTERN.test(recorded)) {
      return recorded;
    }
    let suggestion = '';
    let problem = '';
    // Asks again after an invalid name, at most a few times.
    for (let attempt = 0; attempt < 5; attempt++) {
      const result = await InputDialog.getText({
        title: DIALOG_TITLE,
        label:
          (problem ? `${problem}\n` : '') +
          'Function name (lowercase letters, digits and "-", at most 63 characters; the cell must define main(args)):',
        text: suggestion,
        placeholder: 'my-function',
        okLabel: 'Deploy'
      });
      if (!result.button.accept || result.value === null) {
        return null;
      }
      const value = result.value.trim();
      const refusal = await nameRefusal(value);
      if (refusal === null) {
        return value;
      }
      [problem, suggestion] = refusal;
    }
    return null;
  }

  /** Another cell of this notebook that deployed (or is named) `name`. */
  private _rivalCell(panel: NotebookPanel, cell: Cell, name: string): Cell | null {
    for (const other of panel.content.widgets) {
      if (other !== cell && provenanceOf(other)?.name === name) {
        return other;
      }
    }
    return null;
  }

  /**
   * Another cell (of any notebook in the folder) the server knows deployed `name`, in words;
   * null when the name is free or this cell's own.
   */
  private async _claimOwner(panel: NotebookPanel, cell: Cell, name: string, cellHash: string): Promise<string | null> {
    try {
      await requestAPI<{ free: boolean }>(
        'claims',
        jsonBody('POST', { name, notebook: panel.context.path, cell_id: cell.model.id, cell_sha256: cellHash })
      );
      return null;
    } catch (error) {
      if (error instanceof APIError && error.status === 409) {
        const owner = (error.body as { owner?: IClaimOwner } | null)?.owner;
        return (owner && ownerWords(owner)) ?? 'another cell';
      }
      // Any other answer is no claim by another cell; the capture checks again.
      return null;
    }
  }

  /** Ask whether this cell should take `name` over from the cell that deployed it. */
  private async _askToReplace(name: string, owner: string): Promise<boolean> {
    const answer = await showDialog({
      title: `${name} is deployed from another cell`,
      body:
        `${owner[0].toUpperCase()}${owner.slice(1)} deployed ${name}. ` +
        `Deploying this cell as ${name} replaces that function's code, and the other cell no ` +
        'longer stands for it. Choose another name for a second function.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: `Replace ${name}` })]
    });
    return answer.button.accept;
  }

  /**
   * Capture the cell in the kernel; when the kernel finds another cell owning the name
   * (deployed from a notebook this one cannot see), ask, and take it over if told to.
   *
   * @returns the capture, or null when it failed (shown in the panel) or was not wanted.
   */
  private async _capture(
    kernel: Kernel.IKernelConnection,
    name: string,
    source: string,
    options: ICaptureOptions
  ): Promise<(ICaptureAnswer & { bundle: string }) | null> {
    try {
      return await captureInKernel(kernel, name, source, options);
    } catch (error) {
      if (!(error instanceof NameTaken) || !(await this._askToReplace(name, ownerWords(error.owner)))) {
        this._captureFailed(error);
        return null;
      }
    }
    try {
      return await captureInKernel(kernel, name, source, { ...options, replace: true });
    } catch (error) {
      this._captureFailed(error);
      return null;
    }
  }

  private _captureFailed(error: unknown): void {
    this.model.updateDeployment({
      status: 'failed',
      error: errorMessage(error),
      steps: this.model.deployment?.steps.map(s =>
        s.step === 'capture' ? { ...s, status: 'failed', message: 'Capture failed' } : s
      )
    });
  }

  /** Save the notebook, so the provenance on disk is the deploy's. */
  private async _save(panel: NotebookPanel): Promise<void> {
    if (panel.isDisposed) {
      return;
    }
    try {
      await panel.context.save();
    } catch (error) {
      await showErrorMessage(DIALOG_TITLE, `The deploy worked, but saving ${panel.context.path} failed: ${errorMessage(error)}`);
    }
  }

  /**
   * Deploys made elsewhere (`%faas deploy` in the kernel) record their cell: write their
   * provenance into that cell when it is open and its own is older.
   */
  private _onModelChanged(): void {
    for (const info of this.model.functions) {
      const recorded = info.provenance;
      if (!recorded?.cell_id || !recorded.notebook || typeof recorded.cell_sha256 !== 'string') {
        continue;
      }
      this.tracker.forEach(panel => {
        if (panel.context.path !== recorded.notebook) {
          return;
        }
        const cell = panel.content.widgets.find(c => c.model.id === recorded.cell_id);
        if (!cell) {
          return;
        }
        const own = faasMetadata(cell);
        if (typeof own.time === 'number' && own.time >= recorded.time) {
          return;
        }
        const provenance: IProvenance = { ...recorded };
        if (own.test_input) {
          provenance.test_input = own.test_input;
        }
        // A clean notebook is saved with it (nothing of the person's goes with it).
        const clean = !panel.context.model.dirty;
        cell.model.setMetadata(METADATA_KEY, provenance);
        if (clean) {
          void this._save(panel);
        }
        this._schedule(panel);
      });
    }
  }

  private _onWidgetAdded(_: INotebookTracker, panel: NotebookPanel): void {
    this._watch(panel);
  }

  private _watch(panel: NotebookPanel): void {
    panel.content.modelContentChanged.connect(this._onContent, this);
    panel.disposed.connect(() => {
      panel.content.modelContentChanged.disconnect(this._onContent, this);
      this._marks.delete(panel.id);
      this._publishChanged();
    });
    // Cells exist only once the notebook's context is ready.
    void panel.context.ready.then(() => this._schedule(panel));
  }

  private _onContent(notebook: NotebookPanel['content']): void {
    const panel = notebook.parent;
    if (panel instanceof NotebookPanel) {
      this._schedule(panel);
    }
  }

  private _scheduleAll(): void {
    const current = this.tracker.currentWidget;
    if (current) {
      this._schedule(current);
    } else {
      this.model.setActiveCell({ name: null, state: 'none', provenance: null });
    }
  }

  /** Re-mark `panel`'s cells soon (edits come in bursts). */
  private _schedule(panel: NotebookPanel): void {
    if (this._disposed) {
      return;
    }
    const pending = this._timers.get(panel.id);
    if (pending !== undefined) {
      window.clearTimeout(pending);
    }
    this._timers.set(
      panel.id,
      window.setTimeout(() => {
        this._timers.delete(panel.id);
        void this._mark(panel);
      }, MARK_DELAY_MS)
    );
  }

  /** Set each deployed cell's mark, and tell the model what changed. */
  private async _mark(panel: NotebookPanel): Promise<void> {
    if (panel.isDisposed || this._disposed) {
      return;
    }
    const changed = new Set<string>();
    let active: IActiveCellStatus = { name: null, state: 'none', provenance: null };
    for (const cell of panel.content.widgets) {
      const provenance = provenanceOf(cell);
      const source = cell.model.sharedModel.getSource();
      let state: IActiveCellStatus['state'] = 'none';
      if (provenance) {
        state = (await sha256Hex(source)) === provenance.cell_sha256 ? 'deployed' : 'changed';
      }
      if (cell.isDisposed) {
        continue;
      }
      this._markCell(cell, provenance, state);
      if (state === 'changed' && provenance) {
        changed.add(provenance.name);
      }
      if (cell === panel.content.activeCell) {
        active = { name: provenance?.name ?? magicName(source), state, provenance };
      }
    }
    this._marks.set(panel.id, changed);
    this._publishChanged();
    if (panel === this.tracker.currentWidget) {
      this.model.setActiveCell(active);
    }
  }

  private _markCell(cell: Cell, provenance: IProvenance | null, state: IActiveCellStatus['state']): void {
    const node = cell.node;
    if (state === 'none' || !provenance) {
      if (node.dataset.faasState !== undefined) {
        node.classList.remove(CELL_CLASS, CHANGED_CLASS);
        delete node.dataset.faasState;
        node.style.removeProperty(LABEL_PROPERTY);
        node.removeAttribute('title');
      }
      return;
    }
    node.classList.add(CELL_CLASS);
    node.classList.toggle(CHANGED_CLASS, state === 'changed');
    node.dataset.faasState = state;
    const label =
      state === 'changed'
        ? `ƒ ${provenance.name}: changed since deploy`
        : `ƒ ${provenance.name} v${provenance.version ?? '?'} deployed`;
    // A CSS string, so the stylesheet can show it under the cell's input (content: var(...)).
    node.style.setProperty(LABEL_PROPERTY, JSON.stringify(label));
    node.title = `Deployed as ${provenance.name} (${provenance.image}) to ${provenance.server} on ${new Date(
      provenance.time * 1000
    ).toLocaleString()}`;
  }

  private _publishChanged(): void {
    const all = new Set<string>();
    for (const names of this._marks.values()) {
      names.forEach(name => all.add(name));
    }
    this.model.setChangedFunctions(all);
  }

  private _disposed = false;
  private _timers = new Map<string, number>();
  private _marks = new Map<string, Set<string>>();
}

/** "a cell of demo/peaks.ipynb (version 0.0.3)" for people, from a claim's owner. */
function ownerWords(owner: IClaimOwner): string {
  const version = owner.version ? ` (version ${owner.version})` : '';
  return owner.notebook ? `a cell of ${owner.notebook}${version}` : `another cell${version}`;
}

/**
 * Why `name` is not a valid function name, and a valid suggestion; null when it is valid.
 * The server says exactly why (length, characters) when it can; else the rule is given.
 */
async function nameRefusal(name: string): Promise<[string, string] | null> {
  if (NAME_PATTERN.test(name)) {
    return null;
  }
  try {
    await requestAPI<{ valid: boolean }>(`names?${new URLSearchParams({ name })}`);
  } catch (error) {
    if (error instanceof APIError && error.status === 400) {
      const suggestion = (error.body as { suggestion?: string } | null)?.suggestion ?? '';
      return [error.message, suggestion];
    }
  }
  const suggestion = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return [`"${name}" is not a valid function name.`, suggestion];
}

