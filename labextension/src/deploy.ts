/**
 * Deploying the active notebook cell, and the "changed since deploy" marks.
 *
 * A cell is captured in the notebook's own kernel (its live namespace holds the names the
 * cell uses), then the server extension builds, tests, pushes and deploys the bundle while
 * the model follows the jobs. Provenance lands in `cell.metadata.faas`.
 */
import { InputDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';

import { sha256Hex } from './hash';
import { errorMessage } from './request';
import { IActiveCellStatus, IFunctionsModel, IProvenance, METADATA_KEY } from './tokens';

/** The kernel's capture answer (`jupyter_faas.sidebar_kernel.capture`). */
interface ICaptureAnswer {
  ok: boolean;
  error?: string;
  bundle?: string;
  name?: string;
  code_sha256?: string;
}

/** Function names: the same rule as `jupyter_faas.bundle.check_name`. */
const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A `%%faas NAME ...` first line. */
const MAGIC_LINE = /^%%faas(?:\s+([^\s-][^\s]*))?/;

/** The longest the kernel may take to capture (it runs the cell first), in ms. */
const CAPTURE_TIMEOUT_MS = 10 * 60 * 1000;

/** How long to wait after an edit before re-hashing cells, in ms. */
const MARK_DELAY_MS = 250;

/** CSS classes on marked cells. */
const CELL_CLASS = 'jp-faas-cell';
const CHANGED_CLASS = 'jp-faas-changed';

/** The CSS custom property holding a marked cell's label. */
const LABEL_PROPERTY = '--jp-faas-cell-label';

/** The `%%faas` name of a cell's source, or null for a plain cell (or `%%faas` without a name). */
export function magicName(source: string): string | null {
  const match = MAGIC_LINE.exec(source);
  return match?.[1] ?? null;
}

/** True when the cell starts with `%%faas`. */
function isMagicCell(source: string): boolean {
  return source.startsWith('%%faas');
}

/** The provenance in a cell's metadata, when it has a usable one. */
function provenanceOf(cell: Cell): IProvenance | null {
  const value = cell.model.getMetadata(METADATA_KEY) as IProvenance | undefined;
  return value && typeof value.cell_sha256 === 'string' && typeof value.name === 'string'
    ? value
    : null;
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
        'Deploy cell as function',
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
        'Deploy cell as function',
        'This notebook has no running kernel. Start one (Kernel ▸ Restart Kernel…) and deploy ' +
          'again: the cell is captured in the kernel, with the names earlier cells defined.'
      );
      return;
    }
    const cellHash = await sha256Hex(source);
    this.model.beginDeployment(name);
    let answer: ICaptureAnswer & { bundle: string };
    try {
      answer = await captureInKernel(kernel, name, source);
    } catch (error) {
      this.model.updateDeployment({
        status: 'failed',
        error: errorMessage(error),
        steps: this.model.deployment?.steps.map(s =>
          s.step === 'capture' ? { ...s, status: 'failed', message: 'Capture failed' } : s
        )
      });
      return;
    }
    let record;
    try {
      record = await this.model.deployBundle(answer.name ?? name, answer.bundle);
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
      cell_sha256: cellHash
    };
    // The cell may have been deleted while the deploy ran.
    if (!cell.isDisposed) {
      cell.model.setMetadata(METADATA_KEY, provenance);
    }
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
    this.tracker.forEach(panel => panel.content.modelContentChanged.disconnect(this._onContent, this));
  }

  /** The function name: from `%%faas NAME`, else asked for (prefilled from provenance). */
  private async _functionName(cell: Cell, source: string): Promise<string | null> {
    if (isMagicCell(source)) {
      const name = magicName(source);
      if (name === null) {
        await showErrorMessage(
          'Deploy cell as function',
          'This `%%faas` cell names no function: write it as `%%faas NAME` (for example `%%faas peaks`).'
        );
      }
      return name;
    }
    let suggestion = provenanceOf(cell)?.name ?? '';
    let problem = '';
    // Asks again after an invalid name, at most a few times.
    for (let attempt = 0; attempt < 5; attempt++) {
      const result = await InputDialog.getText({
        title: 'Deploy cell as function',
        label:
          (problem ? `${problem}\n` : '') +
          'Function name (lowercase letters, digits and "-"; the cell must define main(args)):',
        text: suggestion,
        placeholder: 'my-function',
        okLabel: 'Deploy'
      });
      if (!result.button.accept || result.value === null) {
        return null;
      }
      const value = result.value.trim();
      if (NAME_PATTERN.test(value)) {
        return value;
      }
      problem = `"${value}" is not a valid function name.`;
      suggestion = value.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
    }
    return null;
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

/**
 * Capture `source` as function `name` in the notebook's kernel.
 *
 * The code runs without storing history. It is not `silent`: a silent request gets no
 * execute_result, and that result's text/plain is the answer (bare JSON). Kernel errors
 * (jupyter-faas missing from the kernel's environment, say) are thrown.
 */
export async function captureInKernel(
  kernel: Kernel.IKernelConnection,
  name: string,
  source: string
): Promise<ICaptureAnswer & { bundle: string }> {
  // A JSON string literal is also a Python string literal for the same text, whatever
  // quotes, backslashes or non-ASCII characters the cell holds.
  const code =
    'import jupyter_faas.sidebar_kernel as _faas; ' +
    `_faas.capture(${JSON.stringify(name)}, ${JSON.stringify(source)}, None, None)`;
  const future = kernel.requestExecute({
    code,
    silent: false,
    store_history: false,
    allow_stdin: false,
    stop_on_error: false
  });
  let answerText: string | null = null;
  let failure: string | null = null;
  future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
    if (KernelMessage.isExecuteResultMsg(msg) || KernelMessage.isDisplayDataMsg(msg)) {
      const data = msg.content.data;
      const json = data['application/json'];
      answerText = json !== undefined ? JSON.stringify(json) : String(data['text/plain'] ?? '');
    } else if (KernelMessage.isErrorMsg(msg)) {
      failure = `${msg.content.ename}: ${msg.content.evalue}`;
    }
  };
  let timer = 0;
  const timeout = new Promise<never>((_, reject) => {
    timer = window.setTimeout(
      () => reject(new Error(`The kernel did not finish capturing ${name} within ${CAPTURE_TIMEOUT_MS / 60000} minutes.`)),
      CAPTURE_TIMEOUT_MS
    );
  });
  try {
    await Promise.race([future.done, timeout]);
  } finally {
    window.clearTimeout(timer);
  }
  if (failure !== null) {
    throw new Error(
      `Capturing ${name} in the kernel failed: ${failure}. Is jupyter-faas installed in the ` +
        "notebook's kernel environment?"
    );
  }
  if (answerText === null) {
    throw new Error(`The kernel gave no answer when capturing ${name}.`);
  }
  const answer = parseAnswer(answerText);
  if (!answer.ok || !answer.bundle) {
    throw new Error(answer.error ?? `The kernel could not capture ${name}.`);
  }
  return answer as ICaptureAnswer & { bundle: string };
}

/** The capture answer from its text (bare JSON: sidebar_kernel's CaptureReply). */
function parseAnswer(text: string): ICaptureAnswer {
  try {
    return JSON.parse(text) as ICaptureAnswer;
  } catch {
    throw new Error(
      `The kernel's capture answer is not JSON: ${text.slice(0, 200)}. Do the kernel and the ` +
        'Jupyter server have the same jupyter-faas version?'
    );
  }
}
