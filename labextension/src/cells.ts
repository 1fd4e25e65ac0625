/**
 * Finding a function's cell: in the open notebooks, else by opening the notebook its last
 * deploy recorded. The deploy plugin and the function page share one `FunctionCells`.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { testInKernel } from './kernel';
import { IFunctionsModel, IProvenance, ITestReport, METADATA_KEY } from './tokens';

/** A `%%faas NAME ...` first line. */
const MAGIC_LINE = /^%%faas(?:\s+([^\s-][^\s]*))?/;

/** The `%%faas` name of a cell's source, or null for a plain cell (or `%%faas` without a name). */
export function magicName(source: string): string | null {
  const match = MAGIC_LINE.exec(source);
  return match?.[1] ?? null;
}

/** The cell's `metadata.faas`: provenance after a deploy, a name and test input before. */
export function faasMetadata(cell: Cell): Partial<IProvenance> {
  const value = cell.model.getMetadata(METADATA_KEY);
  return value && typeof value === 'object' ? (value as Partial<IProvenance>) : {};
}

/** The provenance in a cell's metadata, when it has a usable one. */
export function provenanceOf(cell: Cell): IProvenance | null {
  const value = faasMetadata(cell);
  return typeof value.cell_sha256 === 'string' && typeof value.name === 'string'
    ? (value as IProvenance)
    : null;
}

/** The function a cell stands for: its recorded name, else its `%%faas NAME` line. */
export function functionNameOf(cell: Cell): string | null {
  const recorded = faasMetadata(cell).name;
  return typeof recorded === 'string' ? recorded : magicName(cell.model.sharedModel.getSource());
}

/** A cell and the notebook holding it. */
export interface ICellRef {
  panel: NotebookPanel;
  cell: Cell;
}

/** What the page needs from the notebooks: its cell, and the test input kept there. */
export interface ICellAccess {
  reveal(name: string): Promise<ICellRef | null>;
  testInput(name: string): Record<string, unknown> | null;
  setTestInput(name: string, input: Record<string, unknown>): Promise<string | null>;
  /** Run the container test in the notebook's kernel (with the kernel's verdict), if possible. */
  testInKernel(name: string, input: Record<string, unknown>): Promise<ITestReport | null>;
}

/** Finds functions' cells, keeps their test input, and tests from their notebook's kernel. */
export class FunctionCells implements ICellAccess {
  constructor(
    private readonly tracker: INotebookTracker,
    private readonly app: JupyterFrontEnd,
    private readonly model: IFunctionsModel
  ) {}

  /**
   * `name`'s cell in the open notebooks: the cell whose id the last deploy recorded, else a
   * cell whose metadata or `%%faas` line names it (the current notebook first).
   */
  find(name: string): ICellRef | null {
    const recorded = this.model.info(name)?.provenance ?? null;
    const panels: NotebookPanel[] = [];
    const current = this.tracker.currentWidget;
    if (current) {
      panels.push(current);
    }
    this.tracker.forEach(panel => {
      if (panel !== current) {
        panels.push(panel);
      }
    });
    let named: ICellRef | null = null;
    for (const panel of panels) {
      for (const cell of panel.content.widgets) {
        if (recorded?.cell_id && cell.model.id === recorded.cell_id && panel.context.path === recorded.notebook) {
          return { panel, cell };
        }
        if (named === null && functionNameOf(cell) === name) {
          named = { panel, cell };
        }
      }
    }
    return named;
  }

  /**
   * Show `name`'s cell: open its notebook when the last deploy recorded one, activate the
   * notebook, select the cell and scroll to it.
   *
   * @returns the cell, or null when no open or recorded notebook has it.
   */
  async reveal(name: string): Promise<ICellRef | null> {
    let found = this.find(name);
    const notebook = this.model.info(name)?.provenance?.notebook;
    if (!found && notebook) {
      const widget = await this.app.commands.execute('docmanager:open', { path: notebook });
      if (widget instanceof NotebookPanel) {
        await widget.context.ready;
        found = this.find(name);
      }
    }
    if (!found) {
      return null;
    }
    const { panel, cell } = found;
    this.app.shell.activateById(panel.id);
    const index = panel.content.widgets.indexOf(cell);
    panel.content.activeCellIndex = index;
    panel.content.deselectAll();
    await panel.content.scrollToItem(index, 'center');
    panel.content.activate();
    return found;
  }

  /** `name`'s test input kept in its cell's metadata, if the cell is open and has one. */
  testInput(name: string): Record<string, unknown> | null {
    const found = this.find(name);
    const input = found ? faasMetadata(found.cell).test_input : undefined;
    return input && typeof input === 'object' ? input : null;
  }

  /**
   * Keep `input` as `name`'s test input in its cell's metadata and save the notebook.
   *
   * @returns the notebook's path, or null when the cell is not open.
   */
  async setTestInput(name: string, input: Record<string, unknown>): Promise<string | null> {
    const found = this.find(name);
    if (!found) {
      return null;
    }
    const { panel, cell } = found;
    cell.model.setMetadata(METADATA_KEY, { ...faasMetadata(cell), name, test_input: input });
    await panel.context.save();
    return panel.context.path;
  }

  /**
   * The container test of `name` run from the kernel of the notebook holding its cell, with
   * the kernel's verdict; null when that notebook is not open or has no kernel.
   */
  async testInKernel(name: string, input: Record<string, unknown>): Promise<ITestReport | null> {
    const kernel = this.find(name)?.panel.sessionContext.session?.kernel;
    return kernel ? testInKernel(kernel, name, input) : null;
  }
}
