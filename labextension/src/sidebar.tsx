/**
 * The Functions sidebar: every function with its state, the deploy in progress, and per
 * function an invoke form, its activations (opening their logs) and its cron schedules.
 */
import {
  Button,
  caretDownIcon,
  caretRightIcon,
  LabIcon,
  ReactWidget,
  refreshIcon,
  UseSignal
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import React, { useEffect, useState } from 'react';

import { errorMessage } from './request';
import {
  IActivation,
  IActivationSummary,
  IDeployment,
  IFunctionInfo,
  IFunctionsModel,
  SIDEBAR_ID
} from './tokens';

/** The sidebar tab's icon: a lambda on a cell-like frame, coloured by the theme. */
export const functionsIcon = new LabIcon({
  name: 'jupyter-faas:functions',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M4 3h16a1 1 0 0 1 1 1v16a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V4a1 1 0 0 1 ' +
    '1-1zm1 2v14h14V5H5zm3.2 2h2.3l5.3 10h-2.3l-2.1-4.1L8.9 17H6.6l3.6-6.3L8.2 7z"/></svg>'
});

/** How often the list refreshes while the sidebar is visible, in ms. */
const REFRESH_INTERVAL_MS = 30_000;

/** A cron line: five fields (minute hour day month weekday), or six with seconds first. */
const CRON_PATTERN = /^\S+(\s+\S+){4,5}$/;

/** The sidebar widget. */
export class FunctionsSidebar extends ReactWidget {
  constructor(
    private readonly model: IFunctionsModel,
    private readonly onDeploy: () => void
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
        {() => <FunctionsView model={this.model} onDeploy={this.onDeploy} />}
      </UseSignal>
    );
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.model.refresh();
    this._timer = window.setInterval(() => void this.model.refresh(), REFRESH_INTERVAL_MS);
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
}

function FunctionsView({ model, onDeploy }: IViewProps): JSX.Element {
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
              model={model}
              info={info}
              changed={model.changedFunctions.has(info.name)}
            />
          ))}
        </ul>
      )}
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
            <span
              className="jp-faas-Bar"
              role="progressbar"
              aria-label={`${step.step} progress`}
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={Math.round(100 * stepProgress(step.status, step.progress))}
            >
              <span style={{ width: `${100 * stepProgress(step.status, step.progress)}%` }} />
            </span>
            {step.message && <span className="jp-faas-StepMessage">{step.message}</span>}
          </li>
        ))}
      </ol>
      {deployment.record && (
        <p className="jp-faas-Success" data-testid="faas-deploy-result">
          Deployed {deployment.record.name} version {deployment.record.version}:{' '}
          <code>{deployment.record.image}</code>
          {deployment.record.digest && <code> {shortDigest(deployment.record.digest)}</code>}
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
  model: IFunctionsModel;
  info: IFunctionInfo;
  changed: boolean;
}

function FunctionItem({ model, info, changed }: IItemProps): JSX.Element {
  const [open, setOpen] = useState(false);
  const bodyId = `jp-faas-fn-${info.name}`;
  const last = info.last_activation;
  const Caret = open ? caretDownIcon : caretRightIcon;
  return (
    <li className="jp-faas-Function" data-testid={`faas-function-${info.name}`} data-state={info.state}>
      <button
        className="jp-faas-FunctionToggle"
        aria-expanded={open}
        aria-controls={bodyId}
        data-testid={`faas-toggle-${info.name}`}
        onClick={() => setOpen(!open)}
      >
        <Caret.react tag="span" className="jp-faas-Caret" />
        <span className="jp-faas-FunctionName">{info.name}</span>
        <span className={`jp-faas-Badge jp-faas-mod-${info.state}`} data-testid={`faas-state-${info.name}`}>
          {info.state === 'bundle' ? 'bundle only' : info.state}
        </span>
        {changed && (
          <span className="jp-faas-Badge jp-faas-mod-changed" data-testid={`faas-changed-${info.name}`}>
            changed since deploy
          </span>
        )}
      </button>
      <dl className="jp-faas-Facts">
        {info.image && (
          <>
            <dt>Image</dt>
            <dd>
              <code title={info.image}>{info.image}</code>
            </dd>
          </>
        )}
        {info.digest && (
          <>
            <dt>Digest</dt>
            <dd>
              <code title={info.digest}>{shortDigest(info.digest)}</code>
            </dd>
          </>
        )}
        {info.deployed && (
          <>
            <dt>Deployed</dt>
            <dd title={absolute(info.deployed.time)}>
              v{info.deployed.version} {ago(info.deployed.time)}
            </dd>
          </>
        )}
        <dt>Last run</dt>
        <dd data-testid={`faas-last-${info.name}`}>
          {last ? `${last.status}, ${duration(last.duration)}, ${last.cold ? 'cold' : 'warm'} ${ago(last.start / 1000)}` : 'never'}
        </dd>
      </dl>
      {open && (
        <div id={bodyId} className="jp-faas-FunctionBody">
          {info.state === 'deployed' ? (
            <>
              <InvokeForm model={model} name={info.name} />
              <Activations model={model} name={info.name} />
              <Schedules model={model} name={info.name} />
            </>
          ) : (
            <p className="jp-faas-Empty">
              Not deployed: select its cell and press "Deploy active cell" to invoke or schedule it.
            </p>
          )}
        </div>
      )}
    </li>
  );
}

/** The input's problem, or null when it is a JSON object. */
function inputProblem(text: string): string | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `Not valid JSON: ${errorMessage(error)}`;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return 'The input must be a JSON object, for example {"x": 1}.';
  }
  return null;
}

function InvokeForm({ model, name }: { model: IFunctionsModel; name: string }): JSX.Element {
  const [text, setText] = useState('{}');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<IActivation | null>(null);
  const [error, setError] = useState<string | null>(null);
  const problem = inputProblem(text);
  const inputId = `jp-faas-input-${name}`;
  const problemId = `${inputId}-problem`;
  const invoke = async () => {
    setBusy(true);
    setError(null);
    try {
      setResult(await model.invoke(name, JSON.parse(text)));
    } catch (err) {
      setResult(null);
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="jp-faas-Section" aria-label={`Invoke ${name}`}>
      <h3 className="jp-faas-Subtitle">Invoke</h3>
      <label htmlFor={inputId}>Input (JSON object)</label>
      <textarea
        id={inputId}
        className="jp-faas-Input"
        rows={3}
        spellCheck={false}
        value={text}
        aria-invalid={problem !== null}
        aria-describedby={problem ? problemId : undefined}
        data-testid={`faas-invoke-input-${name}`}
        onChange={event => setText(event.target.value)}
      />
      {problem && (
        <p id={problemId} className="jp-faas-Error" role="alert" data-testid={`faas-invoke-problem-${name}`}>
          {problem}
        </p>
      )}
      <Button
        className="jp-mod-styled jp-mod-accept"
        disabled={problem !== null || busy}
        aria-label={`Invoke ${name}`}
        data-testid={`faas-invoke-${name}`}
        onClick={() => void invoke()}
      >
        {busy ? 'Invoking…' : 'Invoke'}
      </Button>
      {error && (
        <pre className="jp-faas-Error" role="alert" data-testid={`faas-invoke-error-${name}`}>
          {error}
        </pre>
      )}
      {result && <ActivationDetail activation={result} testid={`faas-invoke-result-${name}`} />}
    </section>
  );
}

function ActivationDetail({ activation, testid }: { activation: IActivation; testid: string }): JSX.Element {
  const logs = activation.logs;
  return (
    <div className="jp-faas-Activation" data-testid={testid} data-status={activation.status}>
      <p>
        <strong>{activation.status}</strong> in {duration(activation.duration)},{' '}
        {activation.cold ? 'cold' : 'warm'} start, {absolute(activation.start / 1000)}{' '}
        <code title="activation id">{activation.activationId}</code>
      </p>
      <div className="jp-faas-Label">Result</div>
      <pre data-testid={`${testid}-result`}>{JSON.stringify(activation.result ?? null, null, 2)}</pre>
      <div className="jp-faas-Label">Logs</div>
      <pre data-testid={`${testid}-logs`}>{logs.length ? logs.join('\n') : '(no log lines)'}</pre>
    </div>
  );
}

function Activations({ model, name }: { model: IFunctionsModel; name: string }): JSX.Element {
  const [error, setError] = useState<string | null>(null);
  const [opened, setOpened] = useState<IActivation | null>(null);
  const load = () => {
    setError(null);
    model.loadActivations(name).catch(err => setError(errorMessage(err)));
  };
  useEffect(load, [name]);
  const open = async (summary: IActivationSummary) => {
    setError(null);
    try {
      setOpened(await model.activation(summary.activationId));
    } catch (err) {
      setError(errorMessage(err));
    }
  };
  const list = model.activations(name);
  return (
    <section className="jp-faas-Section" aria-label={`Activations of ${name}`}>
      <h3 className="jp-faas-Subtitle">
        Activations
        <Button
          small
          minimal
          aria-label={`Reload the activations of ${name}`}
          title="Reload"
          data-testid={`faas-activations-refresh-${name}`}
          onClick={load}
        >
          <refreshIcon.react tag="span" />
        </Button>
      </h3>
      {error && (
        <p className="jp-faas-Error" role="alert">
          {error}
        </p>
      )}
      {list === undefined ? (
        <p className="jp-faas-Empty">Loading…</p>
      ) : list.length === 0 ? (
        <p className="jp-faas-Empty">No activations yet.</p>
      ) : (
        <table className="jp-faas-Table" data-testid={`faas-activations-${name}`}>
          <thead>
            <tr>
              <th scope="col">Status</th>
              <th scope="col">Start</th>
              <th scope="col">Duration</th>
              <th scope="col">Start kind</th>
            </tr>
          </thead>
          <tbody>
            {list.map(a => (
              <tr key={a.activationId} className={opened?.activationId === a.activationId ? 'jp-mod-selected' : ''}>
                <td>
                  <button
                    className="jp-faas-Link"
                    aria-label={`Open the logs of activation ${a.activationId}`}
                    data-testid="faas-activation-row"
                    onClick={() => void open(a)}
                  >
                    {a.status}
                  </button>
                </td>
                <td title={absolute(a.start / 1000)}>{clock(a.start)}</td>
                <td>{duration(a.duration)}</td>
                <td>{a.cold ? 'cold' : 'warm'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {opened && <ActivationDetail activation={opened} testid="faas-activation-detail" />}
    </section>
  );
}

function Schedules({ model, name }: { model: IFunctionsModel; name: string }): JSX.Element {
  const [cron, setCron] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    model.loadSchedules(name).catch(err => setError(errorMessage(err)));
  }, [name]);
  const run = async (work: Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await work;
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  const cronValue = cron.trim();
  const cronProblem =
    cronValue && !CRON_PATTERN.test(cronValue)
      ? 'A cron line has five fields: minute hour day month weekday, e.g. */5 * * * *.'
      : null;
  const list = model.schedules(name) ?? [];
  const inputId = `jp-faas-cron-${name}`;
  return (
    <section className="jp-faas-Section" aria-label={`Schedules of ${name}`}>
      <h3 className="jp-faas-Subtitle">Schedules</h3>
      {list.length === 0 ? (
        <p className="jp-faas-Empty">No schedules.</p>
      ) : (
        <ul className="jp-faas-Schedules" data-testid={`faas-schedules-${name}`}>
          {list.map(s => (
            <li key={s.trigger}>
              <code>{s.cron}</code>
              <Button
                small
                className="jp-mod-styled jp-mod-warn"
                aria-label={`Remove schedule ${s.cron} of ${name}`}
                disabled={busy}
                onClick={() => void run(model.removeSchedule(name, s.cron))}
              >
                Remove
              </Button>
            </li>
          ))}
        </ul>
      )}
      <form
        className="jp-faas-ScheduleForm"
        onSubmit={event => {
          event.preventDefault();
          if (cronValue && !cronProblem) {
            void run(model.addSchedule(name, cronValue).then(() => setCron('')));
          }
        }}
      >
        <label htmlFor={inputId}>Cron</label>
        <input
          id={inputId}
          className="jp-mod-styled"
          value={cron}
          placeholder="*/5 * * * *"
          aria-invalid={cronProblem !== null}
          data-testid={`faas-cron-${name}`}
          onChange={event => setCron(event.target.value)}
        />
        <Button
          type="submit"
          small
          className="jp-mod-styled"
          aria-label={`Add a cron schedule to ${name}`}
          data-testid={`faas-schedule-add-${name}`}
          disabled={busy || !cronValue || cronProblem !== null}
        >
          Add
        </Button>
      </form>
      {(cronProblem || error) && (
        <p className="jp-faas-Error" role="alert">
          {cronProblem ?? error}
        </p>
      )}
    </section>
  );
}

/** A step's bar fill: its own progress, full when done. */
function stepProgress(status: string, progress: number | null): number {
  if (status === 'done' || status === 'skipped') {
    return 1;
  }
  return Math.max(0, Math.min(1, progress ?? 0));
}

function shortDigest(digest: string): string {
  return digest.length > 19 ? `${digest.slice(0, 19)}…` : digest;
}

/** A duration in ms as people read it. */
function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) {
    return 'n/a';
  }
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** Seconds since the epoch as "5 min ago". */
function ago(seconds: number | null): string {
  if (!seconds) {
    return '';
  }
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  if (delta < 60) {
    return 'just now';
  }
  if (delta < 3600) {
    return `${Math.floor(delta / 60)} min ago`;
  }
  if (delta < 86400) {
    return `${Math.floor(delta / 3600)} h ago`;
  }
  return `${Math.floor(delta / 86400)} d ago`;
}

function absolute(seconds: number | null): string {
  return seconds ? new Date(seconds * 1000).toLocaleString() : '';
}

/** Epoch ms as a local time of day. */
function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString();
}
