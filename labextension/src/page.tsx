/**
 * A function's page in the main area: invoke, test, activations (with their picture),
 * versions with rollback, the bundle's files and schedules, plus go to cell, delete and
 * the web URL.
 */
import { Dialog, MainAreaWidget, showDialog } from '@jupyterlab/apputils';
import { Button, ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import React, { useEffect, useRef, useState } from 'react';

import { ActivationsTab } from './activations';
import { ICellAccess } from './cells';
import { absolute, ago, clock, shortDigest } from './format';
import { InvokeTab, TestTab } from './invoke';
import { errorMessage } from './request';
import { IFunctionsModel, IVersion, PAGE_ID_PREFIX } from './tokens';

/** How often a visible page asks for new activations (cron, notebook and other clients), ms. */
const ACTIVATIONS_POLL_MS = 3_000;

/** How often a visible page re-reads the function (versions, schedules, commands), ms. */
const DETAIL_POLL_MS = 15_000;

/** A cron line: five fields (minute hour day month weekday), or six with seconds first. */
const CRON_PATTERN = /^\S+(\s+\S+){4,5}$/;

/** The tabs, in order. */
const TABS = ['invoke', 'test', 'activations', 'versions', 'bundle', 'schedules'] as const;
type Tab = (typeof TABS)[number];

/** A main-area widget showing `name`'s page. */
export function createFunctionPage(
  name: string,
  model: IFunctionsModel,
  cells: ICellAccess
): MainAreaWidget<FunctionPage> {
  const content = new FunctionPage(name, model, cells);
  const widget = new MainAreaWidget({ content });
  widget.id = `${PAGE_ID_PREFIX}${name}`;
  widget.title.label = `ƒ ${name}`;
  widget.title.caption = `Function ${name}`;
  widget.title.closable = true;
  return widget;
}

/** The page's content (`createFunctionPage` wraps it in a main-area widget). */
export class FunctionPage extends ReactWidget {
  constructor(
    readonly functionName: string,
    private readonly model: IFunctionsModel,
    private readonly cells: ICellAccess
  ) {
    super();
    this.addClass('jp-faas-Page');
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => <PageView name={this.functionName} model={this.model} cells={this.cells} onDeleted={() => this.parent?.close()} />}
      </UseSignal>
    );
  }

  // Polls only while visible: a page added to the main area is attached visible (no
  // after-show), a page in a background tab becomes visible by after-show.
  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this._start();
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._start();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._stop();
  }

  protected onBeforeDetach(msg: Message): void {
    this._stop();
    super.onBeforeDetach(msg);
  }

  dispose(): void {
    this._stop();
    super.dispose();
  }

  private _start(): void {
    this._stop();
    this._pollActivations();
    this._pollDetail();
    this._activationsTimer = window.setInterval(() => this._pollActivations(), ACTIVATIONS_POLL_MS);
    this._detailTimer = window.setInterval(() => this._pollDetail(), DETAIL_POLL_MS);
  }

  private _pollActivations(): void {
    const name = this.functionName;
    const known = this.model.activations(name)?.[0];
    this.model.loadActivations(name).then(
      () => {
        // A run of a version this page has not seen (a redeploy elsewhere): re-read versions.
        const newest = this.model.activations(name)?.[0];
        if (newest && newest.activationId !== known?.activationId) {
          void this.model.refresh();
          const current = this.model.versions(name)?.find(v => v.current)?.version;
          if (newest.version && newest.version !== current) {
            void this.model.loadVersions(name).catch(() => undefined);
          }
        }
      },
      () => undefined
    );
  }

  private _pollDetail(): void {
    const name = this.functionName;
    // The list row too, should the sidebar be closed (it follows the server only when open).
    void this.model.refreshStatus();
    void this.model.loadDetail(name).catch(() => undefined);
    void this.model.loadVersions(name).catch(() => undefined);
  }

  private _stop(): void {
    window.clearInterval(this._activationsTimer);
    window.clearInterval(this._detailTimer);
  }

  private _activationsTimer = 0;
  private _detailTimer = 0;
}

interface IPageProps {
  name: string;
  model: IFunctionsModel;
  cells: ICellAccess;
  onDeleted: () => void;
}

function PageView({ name, model, cells, onDeleted }: IPageProps): JSX.Element {
  const [tab, setTab] = useState<Tab>('invoke');
  const [notice, setNotice] = useState<string | null>(null);
  const tabRefs = useRef<Record<string, HTMLButtonElement | null>>({});
  // The list row is the freshest (followed every few seconds); the detail adds the commands.
  const info = model.info(name) ?? model.detail(name);
  const deployed = info?.state === 'deployed';
  const goToCell = async () => {
    setNotice(null);
    try {
      const found = await cells.reveal(name);
      if (!found) {
        setNotice(
          `No open notebook has ${name}'s cell, and its last deploy recorded no notebook. ` +
            `Open the notebook holding the %%faas ${name} cell (or the cell deployed as ${name}).`
        );
      }
    } catch (err) {
      setNotice(errorMessage(err));
    }
  };
  const remove = async () => {
    const bundle = info?.bundle ? ` and the bundle folder ${info.bundle}` : '';
    const answer = await showDialog({
      title: `Delete ${name}?`,
      body:
        `This removes ${name}'s schedules, its action on the function server${bundle}. ` +
        'Its version history stays, so a rollback can bring it back.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await model.deleteFunction(name);
      onDeleted();
    } catch (err) {
      setNotice(`Could not delete ${name}: ${errorMessage(err)}`);
    }
  };
  const onTabKey = (event: React.KeyboardEvent, index: number) => {
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
    if (step) {
      const next = TABS[(index + step + TABS.length) % TABS.length];
      setTab(next);
      tabRefs.current[next]?.focus();
      event.preventDefault();
    }
  };
  const webUrl = model.detail(name)?.commands?.web_url ?? info?.web_url ?? null;
  return (
    <div className="jp-faas-PageView" data-testid={`faas-page-${name}`}>
      <header className="jp-faas-PageHeader">
        <h1 className="jp-faas-PageTitle">{name}</h1>
        {info && (
          <span className={`jp-faas-Badge jp-faas-mod-${info.state}`} data-testid="faas-page-state">
            {stateWords(info.state)}
          </span>
        )}
        {info?.deployed && (
          <span className="jp-faas-PageFacts" title={absolute(info.deployed.time)}>
            version {info.deployed.version} deployed {ago(info.deployed.time)}
          </span>
        )}
        <span className="jp-faas-PageActions">
          <Button className="jp-mod-styled" data-testid="faas-go-to-cell" onClick={() => void goToCell()}>
            Go to cell
          </Button>
          <Button className="jp-mod-styled jp-mod-warn" data-testid="faas-delete" onClick={() => void remove()}>
            Delete…
          </Button>
        </span>
      </header>
      {info?.image && (
        <p className="jp-faas-PageImage">
          Image <code className="jp-faas-Ref">{info.image}</code>
          {info.digest && (
            <code className="jp-faas-Ref jp-faas-Digest" title={info.digest}>
              {shortDigest(info.digest)}
            </code>
          )}
        </p>
      )}
      {webUrl && (
        <p className="jp-faas-PageImage">
          Web URL{' '}
          <a href={webUrl} target="_blank" rel="noreferrer" className="jp-faas-Ref" data-testid="faas-web-url">
            {webUrl}
          </a>
        </p>
      )}
      {info?.state === 'test-failed' && info.test && (
        <p className="jp-faas-Failure" role="alert" data-testid="faas-page-test-failed">
          {info.test.message}
        </p>
      )}
      {notice && (
        <p className="jp-faas-Error" role="alert" data-testid="faas-page-notice">
          {notice}
        </p>
      )}
      {!info && <p className="jp-faas-Empty">{name} is not listed (any more): refresh the Functions panel.</p>}
      <div className="jp-faas-Tabs" role="tablist" aria-label={`${name}: sections`}>
        {TABS.map((t, i) => (
          <button
            key={t}
            ref={node => (tabRefs.current[t] = node)}
            role="tab"
            id={`jp-faas-tab-${name}-${t}`}
            aria-selected={tab === t}
            aria-controls={`jp-faas-tabpanel-${name}-${t}`}
            tabIndex={tab === t ? 0 : -1}
            className="jp-faas-Tab"
            data-testid={`faas-tab-${t}`}
            onClick={() => setTab(t)}
            onKeyDown={event => onTabKey(event, i)}
          >
            {t[0].toUpperCase() + t.slice(1)}
          </button>
        ))}
      </div>
      <div
        role="tabpanel"
        id={`jp-faas-tabpanel-${name}-${tab}`}
        aria-labelledby={`jp-faas-tab-${name}-${tab}`}
        className="jp-faas-TabPanel"
        data-testid={`faas-tabpanel-${tab}`}
      >
        {tab === 'invoke' &&
          (deployed ? (
            <InvokeTab model={model} name={name} />
          ) : (
            <NotDeployed name={name} what="invoke it" />
          ))}
        {tab === 'test' && <TestTab model={model} name={name} cells={cells} />}
        {tab === 'activations' && <ActivationsTab model={model} name={name} />}
        {tab === 'versions' && <VersionsTab model={model} name={name} />}
        {tab === 'bundle' && <BundleTab model={model} name={name} />}
        {tab === 'schedules' &&
          (deployed ? (
            <SchedulesTab model={model} name={name} />
          ) : (
            <NotDeployed name={name} what="schedule it" />
          ))}
      </div>
    </div>
  );
}

function stateWords(state: string): string {
  return state === 'bundle' ? 'bundle only' : state === 'test-failed' ? 'test failed' : state;
}

function NotDeployed({ name, what }: { name: string; what: string }): JSX.Element {
  return (
    <p className="jp-faas-Empty">
      {name} is not deployed: select its cell and press "Deploy active cell" in the Functions panel to {what}.
    </p>
  );
}

function VersionsTab({ model, name }: { model: IFunctionsModel; name: string }): JSX.Element {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  useEffect(() => {
    model.loadVersions(name).catch(err => setError(errorMessage(err)));
  }, [name]);
  const list = model.versions(name);
  const rollback = async (target: IVersion) => {
    setBusy(target.version);
    setError(null);
    setDone(null);
    try {
      const made = await model.rollback(name, target.version);
      setDone(`Rolled back to version ${target.version}: the server now runs it as version ${made.version}.`);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(null);
    }
  };
  return (
    <section className="jp-faas-Section" aria-label={`Versions of ${name}`}>
      <p className="jp-faas-Hint">
        Every deploy of {name} to this server. A rollback redeploys that version's exact image and code in
        one step (the server numbers it as a new version).
      </p>
      {error && (
        <pre className="jp-faas-Error" role="alert" data-testid="faas-versions-error">
          {error}
        </pre>
      )}
      {done && (
        <p className="jp-faas-Success" role="status" data-testid="faas-rollback-done">
          {done}
        </p>
      )}
      {list === undefined ? (
        <p className="jp-faas-Empty">Loading…</p>
      ) : list.length === 0 ? (
        <p className="jp-faas-Empty">No deploys recorded yet.</p>
      ) : (
        <table className="jp-faas-Table jp-faas-Versions" data-testid="faas-versions">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Deployed</th>
              <th scope="col">By</th>
              <th scope="col">Code</th>
              <th scope="col">Image</th>
              <th scope="col" />
            </tr>
          </thead>
          <tbody>
            {list.map(v => (
              <tr
                key={v.version}
                data-testid="faas-version-row"
                data-version={v.version}
                data-current={String(v.current)}
                className={v.current ? 'jp-faas-mod-current' : ''}
              >
                <td>
                  <strong>{v.version}</strong>
                  {v.current && <span className="jp-faas-Badge jp-faas-mod-deployed">current</span>}
                  {v.rollback_of && <span className="jp-faas-Hint"> rollback of {v.rollback_of}</span>}
                </td>
                <td title={absolute(v.time)}>
                  {v.time ? `${clock(v.time * 1000)}, ${ago(v.time)}` : ''}
                </td>
                <td>{v.who ?? ''}</td>
                <td>
                  <code className="jp-faas-Ref" title={v.code_sha256 ?? ''}>
                    {v.code_sha256 ? v.code_sha256.slice(0, 12) : ''}
                  </code>
                </td>
                <td>
                  <code className="jp-faas-Ref" title={v.image ?? ''}>
                    {v.image ?? ''}
                  </code>
                  {v.digest && (
                    <code className="jp-faas-Ref jp-faas-Digest" title={v.digest}>
                      {shortDigest(v.digest)}
                    </code>
                  )}
                </td>
                <td>
                  <Button
                    small
                    className="jp-mod-styled"
                    disabled={v.current || busy !== null}
                    aria-label={`Roll ${name} back to version ${v.version}`}
                    data-testid="faas-rollback"
                    onClick={() => void rollback(v)}
                  >
                    {busy === v.version ? 'Rolling back…' : 'Roll back'}
                  </Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** The bundle's files, in the order people read them. */
const BUNDLE_ORDER = ['handler.py', 'requirements.txt', 'faas.json'];

function BundleTab({ model, name }: { model: IFunctionsModel; name: string }): JSX.Element {
  const [files, setFiles] = useState<Record<string, string> | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    model.bundleFiles(name).then(setFiles, err => setError(errorMessage(err)));
  }, [name, model.info(name)?.deployed?.version]);
  if (error) {
    return (
      <p className="jp-faas-Error" role="alert" data-testid="faas-bundle-error">
        {error}
      </p>
    );
  }
  if (!files) {
    return <p className="jp-faas-Empty">Loading…</p>;
  }
  const names = Object.keys(files).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return (
    <section className="jp-faas-Section" aria-label={`Bundle of ${name}`}>
      <p className="jp-faas-Hint">{model.info(name)?.bundle ?? ''}</p>
      {names.map(file => (
        <div key={file} className="jp-faas-BundleFile">
          <h3 className="jp-faas-Subtitle">{file}</h3>
          <pre data-testid={`faas-bundle-file-${file}`}>{files[file]}</pre>
        </div>
      ))}
    </section>
  );
}

function rank(file: string): number {
  const index = BUNDLE_ORDER.indexOf(file);
  return index < 0 ? BUNDLE_ORDER.length : index;
}

function SchedulesTab({ model, name }: { model: IFunctionsModel; name: string }): JSX.Element {
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
      {list.length === 0 ? (
        <p className="jp-faas-Empty">No schedules.</p>
      ) : (
        <ul className="jp-faas-Schedules" data-testid="faas-schedules">
          {list.map(s => (
            <li key={s.trigger}>
              <code>{s.cron}</code>
              <span className="jp-faas-Hint" data-testid="faas-schedule-next">
                {s.next_run ? `next run ${s.next_run.words}` : ''}
              </span>
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
        <label htmlFor={inputId}>Cron (UTC)</label>
        <input
          id={inputId}
          className="jp-mod-styled"
          value={cron}
          placeholder="*/5 * * * *"
          aria-invalid={cronProblem !== null}
          data-testid="faas-cron"
          onChange={event => setCron(event.target.value)}
        />
        <Button
          type="submit"
          small
          className="jp-mod-styled"
          aria-label={`Add a cron schedule to ${name}`}
          data-testid="faas-schedule-add"
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
