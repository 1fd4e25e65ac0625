/**
 * jupyter-faas for JupyterLab: the plugins (and nothing else).
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';

import { FunctionCells } from './cells';
import { CellDeployer } from './deploy';
import { FunctionsModel } from './model';
import { createFunctionPage, FunctionPage } from './page';
import { FunctionsSidebar, functionsIcon } from './sidebar';
import { CommandIDs, IFunctionsModel, PAGE_ID_PREFIX, PALETTE_CATEGORY, PluginIDs } from './tokens';

/** The shared model. */
const modelPlugin: JupyterFrontEndPlugin<IFunctionsModel> = {
  id: PluginIDs.model,
  description: 'The Functions model: functions, deploys, activations and schedules.',
  autoStart: true,
  provides: IFunctionsModel,
  activate: (): IFunctionsModel => new FunctionsModel()
};

/** The "Deploy cell as function" command and the cells' deployment marks. */
const deployPlugin: JupyterFrontEndPlugin<void> = {
  id: PluginIDs.deploy,
  description: 'Deploys the active notebook cell as a function and marks deployed cells.',
  autoStart: true,
  requires: [INotebookTracker, IFunctionsModel],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    model: IFunctionsModel,
    palette: ICommandPalette | null
  ): void => {
    const deployer = new CellDeployer(tracker, model);
    app.commands.addCommand(CommandIDs.deployCell, {
      label: 'Deploy cell as function',
      caption: 'Capture the active cell in its kernel, then build, test, push and deploy it',
      icon: functionsIcon,
      isEnabled: () => deployer.canDeploy(),
      execute: async () => {
        // The progress is shown in the sidebar, so it is opened first.
        if (app.commands.hasCommand(CommandIDs.openPanel)) {
          await app.commands.execute(CommandIDs.openPanel);
        }
        await deployer.deployActiveCell();
      }
    });
    palette?.addItem({ command: CommandIDs.deployCell, category: PALETTE_CATEGORY });
    app.contextMenu.addItem({
      command: CommandIDs.deployCell,
      selector: '.jp-Notebook .jp-CodeCell',
      rank: 20
    });
  }
};

/** The Functions sidebar, restored on reload and opened by a command. */
const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: PluginIDs.sidebar,
  description: 'The Functions sidebar.',
  autoStart: true,
  requires: [IFunctionsModel],
  optional: [ILayoutRestorer, ICommandPalette, INotebookTracker],
  activate: (
    app: JupyterFrontEnd,
    model: IFunctionsModel,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    notebooks: INotebookTracker | null
  ): void => {
    // "Copy to notebook" of a shared function: its %%faas cell below the active cell.
    const insertCell = (text: string): boolean => {
      const notebook = notebooks?.currentWidget?.content;
      if (!notebook) {
        return false;
      }
      NotebookActions.insertBelow(notebook);
      notebook.activeCell?.model.sharedModel.setSource(text);
      return true;
    };
    const sidebar = new FunctionsSidebar(
      model,
      () => void app.commands.execute(CommandIDs.deployCell),
      name => void app.commands.execute(CommandIDs.openFunction, { name }),
      insertCell
    );
    app.shell.add(sidebar, 'left', { rank: 650, type: 'Functions' });
    restorer?.add(sidebar, sidebar.id);
    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Open Functions panel',
      caption: 'Show the jupyter-faas Functions sidebar',
      execute: () => {
        app.shell.activateById(sidebar.id);
      }
    });
    palette?.addItem({ command: CommandIDs.openPanel, category: PALETTE_CATEGORY });
  }
};

/** A page per function in the main area, restored on reload. */
const pagesPlugin: JupyterFrontEndPlugin<void> = {
  id: PluginIDs.pages,
  description: "A function's page: invoke, test, activations, versions, bundle, schedules.",
  autoStart: true,
  requires: [IFunctionsModel, INotebookTracker],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    model: IFunctionsModel,
    notebooks: INotebookTracker,
    restorer: ILayoutRestorer | null
  ): void => {
    const cells = new FunctionCells(notebooks, app, model);
    const pages = new WidgetTracker<MainAreaWidget<FunctionPage>>({ namespace: 'jupyter-faas-function' });
    app.commands.addCommand(CommandIDs.openFunction, {
      label: args => (args.name ? `Open function ${args.name}` : 'Open function'),
      caption: "Open a function's page: invoke, test, activations, versions, bundle, schedules",
      execute: async args => {
        const name = String(args.name ?? '');
        const open = pages.find(page => page.content.functionName === name);
        if (open) {
          app.shell.activateById(open.id);
          return open;
        }
        const page = createFunctionPage(name, model, cells);
        await pages.add(page);
        app.shell.add(page, 'main');
        app.shell.activateById(page.id);
        return page;
      }
    });
    void restorer?.restore(pages, {
      command: CommandIDs.openFunction,
      args: page => ({ name: page.content.functionName }),
      name: page => page.id.slice(PAGE_ID_PREFIX.length)
    });
  }
};

export default [modelPlugin, deployPlugin, sidebarPlugin, pagesPlugin];
