/**
 * The Functions sidebar: a compact list of functions (name, state, last run), the active
 * cell's deployment and the deploy in progress. Each function opens in a page of its own.
 */
import { Button, LabIcon, ReactWidget, refreshIcon, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import React from 'react';

import { absolute, ago, isFailure, shortDigest } from './format';
import { SharedSection } from './shared';
import { IDeployment, IDeployStep, IFunctionInfo, IFunctionsModel, SIDEBAR_ID } from './tokens';

/** The sidebar tab's icon: a lambda on a cell-like frame, coloured by the theme. */
export const functionsIcon = new LabIcon({
  name: 'jupyter-faas:functions',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M4 3h16a1 1 0 0 1 1 1v16a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V4a1 1 0 0 1 ' +
    '1-1zm1 2v14h14V5H5zm3.2 2h2.3l5.3 10h-2.3l-2.1-4.1L8.9 17H6.6l3.6-6.3L8.2 7z"/></svg>'
});

/** How often the sidebar follows the server while visible (runs from cron, notebooks and other clients), ms. */
const STATUS_INTERVAL_MS = 5_000;

/** Every how many status polls the whole list is reloaded (bundles written by the magics). */
const FULL_REFRESH_EVERY = 6;

/** The sidebar widget. */
export class FunctionsSidebar extends ReactWidget {
  constructor(
    private readonly model: IFunctionsModel,
    private readonly onDeploy: () => void,
    private readonly onOpen: (name: string) => void,
    private readonly insertCell: (text: string) => boolean
  ) {
    super();
    this.id = SIDEBAR_ID;
    this.addClass('jp-faas-Sidebar');
    this.title.icon = functionsIcon;
    this.title.caption = 'Functions';
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => (
          <FunctionsView model={this.model} onDeploy={this.onDeploy} onOpen={this.onOpen} insertCell={this.insertCell} />
        )}
      </UseSignal>
    );
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    window.clearInterval(this._timer);
    void this.model.refresh();
    let ticks = 0;
    this._timer = window.setInterval(() => {
      ticks += 1;
      void (ticks % FULL_REFRESH_EVERY ? this.model.refreshStatus() : this.model.refresh());
    }, STATUS_INTERVAL_MS);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    window.clearInterval(this._timer);
  }

  dispose(): void {
    window.clearInterval(this._timer);
    super.dispose();
  }

  private _timer = 0;
}

interface IViewProps {
  model: IFunctionsModel;
  onDeploy: () => void;
  onOpen: (name: string) => void;
  insertCell: (text: string) => boolean;
}

function FunctionsView({ model, onDeploy, onOpen, insertCell }: IViewProps): JSX.Element {
  const running = model.deployment?.status === 'running';
  return (
    <div className="jp-faas-View">
      <header className="jp-faas-Header">
        <h2 className="jp-faas-Title">Functions</h2>
        <Button
          small
          minimal
          title="Reload the function list"
          aria-label="Reload the function list"
          data-testid="faas-refresh"
          disabled={model.loading}
          onClick={() => void model.refresh()}
        >
          <refreshIcon.react tag="span" />
        </Button>
      </header>
      <ActiveCell model={model} />
      <div className="jp-faas-Actions">
        <Button
          className="jp-mod-styled jp-mod-accept"
          data-testid="faas-deploy-cell"
          aria-label="Deploy the active cell as a function"
          title="Capture the active cell, build, test, push and deploy it"
          disabled={running}
          onClick={onDeploy}
        >
          {running ? 'Deploying…' : 'Deploy active cell'}
        </Button>
      </div>
      {model.deployment && <DeployProgress deployment={model.deployment} />}
      {model.actingAs?.guest_of && (
        <p className="jp-faas-Empty" data-testid="faas-acting-as">
          As {model.actingAs.user} (guest of {model.actingAs.guest_of}): deploys go to namespace{' '}
          {model.actingAs.namespace ?? model.actingAs.user}
        </p>
      )}
      {model.loadError && (
        <p className="jp-faas-Error" role="alert" data-testid="faas-load-error">
          {model.loadError}
        </p>
      )}
      {model.serverError && (
        <p className="jp-faas-Warning" role="alert" data-testid="faas-server-error">
          Function server: {model.serverError}
        </p>
      )}
      {model.functions.length === 0 && !model.loadError ? (
        <p className="jp-faas-Empty">
          {model.loading
            ? 'Loading…'
            : 'No functions yet. Select a cell that defines main(args) and press "Deploy active cell".'}
        </p>
      ) : (
        <ul className="jp-faas-List" aria-label="Functions">
          {model.functions.map(info => (
            <FunctionItem
              key={info.name}
              info={info}
              changed={model.changedFunctions.has(info.name)}
              onOpen={onOpen}
            />
          ))}
        </ul>
      )}
      <SharedSection functions={model.functions} insertCell={insertCell} />
    </div>
  );
}

function ActiveCell({ model }: { model: IFunctionsModel }): JSX.Element {
  const { name, state, provenance } = model.activeCell;
  let text: string;
  if (state === 'changed') {
    text = `Active cell: ${name}, changed since deploy (v${provenance?.version ?? '?'})`;
  } else if (state === 'deployed') {
    text = `Active cell: deployed as ${name} v${provenance?.version ?? '?'} ${ago(provenance?.time ?? null)}`;
  } else {
    text = name ? `Active cell: %%faas ${name}, not deployed yet` : 'Active cell: not deployed';
  }
  return (
    <p
      className={`jp-faas-ActiveCell jp-faas-mod-${state}`}
      data-testid="faas-active-cell"
      data-state={state}
      aria-live="polite"
    >
      {text}
    </p>
  );
}

function DeployProgress({ deployment }: { deployment: IDeployment }): JSX.Element {
  return (
    <section
      className="jp-faas-Progress"
      data-testid="faas-deploy-progress"
      data-status={deployment.status}
      aria-label={`Deploy of ${deployment.name}`}
    >
      <h3 className="jp-faas-Subtitle">
        Deploy {deployment.name}: {deployment.status}
      </h3>
      <ol className="jp-faas-Steps">
        {deployment.steps.map(step => (
          <li key={step.step} className={`jp-faas-Step jp-faas-mod-${step.status}`} data-step={step.step} data-status={step.status}>
            <span className="jp-faas-StepName">{step.step}</span>
            <span className="jp-faas-StepStatus">{step.status}</span>
            <StepBar step={step} />
            {step.message && (
              <span className="jp-faas-StepMessage" title={step.message}>
                {step.message}
              </span>
            )}
          </li>
        ))}
      </ol>
      {deployment.record && (
        <p className="jp-faas-Success" data-testid="faas-deploy-result">
          Deployed {deployment.record.name} version {deployment.record.version}:{' '}
          <code className="jp-faas-Ref">{deployment.record.image}</code>
          {deployment.record.digest && <code className="jp-faas-Ref"> {shortDigest(deployment.record.digest)}</code>}
        </p>
      )}
      {deployment.error && (
        <pre className="jp-faas-Error" role="alert" data-testid="faas-deploy-error">
          {deployment.error}
        </pre>
      )}
      {deployment.log.length > 0 && (
        <details className="jp-faas-Log">
          <summary>Log ({deployment.log.length} lines)</summary>
          <pre data-testid="faas-deploy-log">
            {deployment.log.map(e => `[${e.step}] ${e.message}`).join('\n')}
          </pre>
        </details>
      )}
    </section>
  );
}

interface IItemProps {
  info: IFunctionInfo;
  changed: boolean;
  onOpen: (name: string) => void;
}

/** One function in the compact list: name, state, last run; it opens the function's page. */
function FunctionItem({ info, changed, onOpen }: IItemProps): JSX.Element {
  const last = info.last_activation;
  const failed = last ? isFailure(last.status) : false;
  return (
    <li className="jp-faas-Function" data-testid={`faas-function-${info.name}`} data-state={info.state}>
      <button
        className="jp-faas-FunctionOpen"
        aria-label={`Open ${info.name}: ${stateWords(info.state)}`}
        title={`Open ${info.name}'s page`}
        data-testid={`faas-open-${info.name}`}
        onClick={() => onOpen(info.name)}
      >
        <span className="jp-faas-FunctionName">{info.name}</span>
        <span className={`jp-faas-Badge jp-faas-mod-${info.state}`} data-testid={`faas-state-${info.name}`}>
          {stateWords(info.state)}
        </span>
        {changed && (
          <span className="jp-faas-Badge jp-faas-mod-changed" data-testid={`faas-changed-${info.name}`}>
            changed since deploy
          </span>
        )}
        <span
          className={`jp-faas-LastRun${failed ? ' jp-faas-mod-failed' : ''}`}
          data-testid={`faas-last-${info.name}`}
          title={last ? absolute(last.start / 1000) : undefined}
        >
          {last
            ? `${last.status} ${ago(last.start / 1000)}${last.version ? ` · v${last.version}` : ''}`
            : info.deployed
              ? `v${info.deployed.version}, never run`
              : 'not deployed'}
        </span>
      </button>
    </li>
  );
}

function stateWords(state: string): string {
  return state === 'bundle' ? 'bundle only' : state === 'test-failed' ? 'test failed' : state;
}

/**
 * A step's bar: its own progress, full when done; a running step with no measure of its
 * progress (a build's pip install) shows a moving stripe instead of a bar stuck at zero.
 */
function StepBar({ step }: { step: IDeployStep }): JSX.Element {
  const finished = step.status === 'done' || step.status === 'skipped';
  const indeterminate = step.status === 'running' && (step.progress === null || step.progress <= 0);
  const fill = finished ? 1 : Math.max(0, Math.min(1, step.progress ?? 0));
  return (
    <span
      className={`jp-faas-Bar${indeterminate ? ' jp-faas-mod-indeterminate' : ''}`}
      role="progressbar"
      aria-label={`${step.step} progress`}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={indeterminate ? undefined : Math.round(100 * fill)}
      data-testid={`faas-bar-${step.step}`}
    >
      <span style={indeterminate ? undefined : { width: `${100 * fill}%` }} />
    </span>
  );
}
