/**
 * A function page's Activations tab (their picture over time and the table, refreshed by
 * the page's polls) and one activation opened: a failure first, in its own style.
 */
import { Button, refreshIcon } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { ActivationChart } from './chart';
import { absolute, clock, duration, failureOf, isFailure, logLines } from './format';
import { errorMessage } from './request';
import { IActivation, IActivationSummary, IFunctionsModel } from './tokens';

/** An activation opened: a failure first in its own style, then result and logs. */
export function ActivationView({ activation, testid }: { activation: IActivation; testid: string }): JSX.Element {
  const failure = failureOf(activation);
  const lines = logLines(activation);
  return (
    <div
      className={`jp-faas-Activation ${failure ? 'jp-faas-mod-failed' : 'jp-faas-mod-ok'}`}
      data-testid={testid}
      data-status={activation.status}
    >
      {failure && (
        <div className="jp-faas-Failure" role="alert">
          <p className="jp-faas-FailureHeadline" data-testid={`${testid}-headline`}>
            {failure.headline}
          </p>
          {failure.traceback.length > 0 && (
            <pre className="jp-faas-Traceback" data-testid={`${testid}-traceback`}>
              {failure.traceback.join('\n')}
            </pre>
          )}
        </div>
      )}
      <p className="jp-faas-ActivationFacts">
        <strong className="jp-faas-Status">{activation.status}</strong> in {duration(activation.duration)},{' '}
        {activation.cold ? 'cold' : 'warm'} start at {activation.start ? clock(activation.start) : 'n/a'}
        {activation.version && <> · version {activation.version}</>}
        {activation.cause?.label && <> · started by {activation.cause.label}</>}{' '}
        <code className="jp-faas-Ref" title="activation id">
          {activation.activationId}
        </code>
      </p>
      {!failure && (
        <>
          <div className="jp-faas-Label">Result</div>
          <pre data-testid={`${testid}-result`}>{JSON.stringify(activation.result ?? null, null, 2)}</pre>
        </>
      )}
      <div className="jp-faas-Label">Logs</div>
      {lines.length ? (
        <ol className="jp-faas-LogLines" data-testid={`${testid}-logs`}>
          {lines.map((line, i) => (
            <li key={i} className={line.stream === 'stderr' ? 'jp-faas-mod-stderr' : ''}>
              {line.time && <time className="jp-faas-LogTime">{line.time}</time>}
              <span className="jp-faas-LogText">{line.text}</span>
            </li>
          ))}
        </ol>
      ) : (
        <p className="jp-faas-Empty" data-testid={`${testid}-logs`}>
          (no log lines)
        </p>
      )}
    </div>
  );
}

export function ActivationsTab({ model, name }: { model: IFunctionsModel; name: string }): JSX.Element {
  const [error, setError] = useState<string | null>(null);
  const [opened, setOpened] = useState<IActivation | null>(null);
  const list = model.activations(name);
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
  return (
    <section className="jp-faas-Section" aria-label={`Activations of ${name}`}>
      <h3 className="jp-faas-Subtitle">
        Activations <span className="jp-faas-Hint">(refreshed every few seconds)</span>
        <Button
          small
          minimal
          aria-label={`Reload the activations of ${name}`}
          title="Reload"
          data-testid="faas-activations-refresh"
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
        <>
          <ActivationChart activations={list} selected={opened?.activationId ?? null} onSelect={a => void open(a)} />
          <table className="jp-faas-Table" data-testid="faas-activations">
            <thead>
              <tr>
                <th scope="col">Status</th>
                <th scope="col">Start</th>
                <th scope="col">Duration</th>
                <th scope="col">Start kind</th>
                <th scope="col">Version</th>
                <th scope="col">Started by</th>
              </tr>
            </thead>
            <tbody>
              {list.map(a => (
                <tr
                  key={a.activationId}
                  data-testid="faas-activation-row"
                  data-activation={a.activationId}
                  className={`${isFailure(a.status) ? 'jp-faas-mod-failed' : ''} ${
                    opened?.activationId === a.activationId ? 'jp-mod-selected' : ''
                  }`}
                >
                  <td>
                    <button
                      className="jp-faas-Link jp-faas-Status"
                      aria-label={`Open activation ${a.activationId} (${a.status})`}
                      data-testid="faas-activation-open"
                      onClick={() => void open(a)}
                    >
                      {a.status}
                    </button>
                  </td>
                  <td title={absolute(a.start / 1000)}>{clock(a.start)}</td>
                  <td>{duration(a.duration)}</td>
                  <td>{a.cold ? 'cold' : 'warm'}</td>
                  <td data-testid="faas-activation-version">{a.version ?? ''}</td>
                  <td data-testid="faas-activation-cause">{a.cause?.label ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {opened && <ActivationView activation={opened} testid="faas-activation-detail" />}
    </section>
  );
}
