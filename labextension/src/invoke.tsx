/**
 * A function page's Invoke and Test tabs: a JSON input (empty means {}, Ctrl+Enter runs),
 * the result, the copyable commands, and the container test with its verdict.
 */
import { Clipboard } from '@jupyterlab/apputils';
import { Button } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { ActivationView } from './activations';
import { ICellAccess } from './cells';
import { errorMessage } from './request';
import { IFunctionsModel, ITestReport } from './tokens';

/** The input's problem, or null when it is a JSON object; empty text means `{}`. */
export function inputProblem(text: string): string | null {
  if (!text.trim()) {
    return null;
  }
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

/** The input as an object (empty text: `{}`); call only when `inputProblem` is null. */
export function parseInput(text: string): Record<string, unknown> {
  return text.trim() ? (JSON.parse(text) as Record<string, unknown>) : {};
}

interface IJsonInputProps {
  id: string;
  label: string;
  value: string;
  testid: string;
  onChange: (text: string) => void;
  /** Ctrl+Enter (Cmd+Enter on a Mac) runs this when the input is valid. */
  onSubmit: () => void;
}

function JsonInput({ id, label, value, testid, onChange, onSubmit }: IJsonInputProps): JSX.Element {
  const problem = inputProblem(value);
  const problemId = `${id}-problem`;
  return (
    <>
      <label htmlFor={id}>{label}</label>
      <textarea
        id={id}
        className="jp-faas-Input"
        rows={4}
        spellCheck={false}
        value={value}
        placeholder="{}  (empty means {}; Ctrl+Enter runs)"
        aria-invalid={problem !== null}
        aria-describedby={problem ? problemId : undefined}
        data-testid={testid}
        onChange={event => onChange(event.target.value)}
        onKeyDown={event => {
          if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
            event.preventDefault();
            // The notebook's own Ctrl+Enter (run cell) must not see it.
            event.stopPropagation();
            if (problem === null) {
              onSubmit();
            }
          }
        }}
      />
      {problem && (
        <p id={problemId} className="jp-faas-Error" role="alert" data-testid={`${testid}-problem`}>
          {problem}
        </p>
      )}
    </>
  );
}

function CopyableCommand({ label, text, testid }: { label: string; text: string; testid: string }): JSX.Element {
  const [copied, setCopied] = useState(false);
  return (
    <div className="jp-faas-Command">
      <div className="jp-faas-Label">
        {label}
        <Button
          small
          minimal
          className="jp-faas-Copy"
          aria-label={`Copy the ${label} command`}
          data-testid={`${testid}-copy`}
          onClick={() => {
            Clipboard.copyToSystem(text);
            setCopied(true);
            window.setTimeout(() => setCopied(false), 1500);
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </Button>
      </div>
      <pre className="jp-faas-CommandText" data-testid={testid}>
        {text}
      </pre>
    </div>
  );
}

export function InvokeTab({ model, name }: { model: IFunctionsModel; name: string }): JSX.Element {
  const [text, setText] = useState('{}');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const result = model.lastResult(name) ?? null;
  const problem = inputProblem(text);
  const commands = model.detail(name)?.commands;
  const invoke = async () => {
    if (busy) {
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await model.invoke(name, parseInput(text));
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="jp-faas-Section" aria-label={`Invoke ${name}`}>
      <JsonInput
        id={`jp-faas-input-${name}`}
        label="Input (a JSON object)"
        value={text}
        testid="faas-invoke-input"
        onChange={setText}
        onSubmit={() => void invoke()}
      />
      <div className="jp-faas-Buttons">
        <Button
          className="jp-mod-styled jp-mod-accept"
          disabled={problem !== null || busy}
          aria-label={`Invoke ${name}`}
          title="Invoke (Ctrl+Enter in the input)"
          data-testid="faas-invoke"
          onClick={() => void invoke()}
        >
          {busy ? 'Invoking…' : 'Invoke'}
        </Button>
      </div>
      {error && (
        <pre className="jp-faas-Error" role="alert" data-testid="faas-invoke-error">
          {error}
        </pre>
      )}
      {result && <ActivationView activation={result} testid="faas-invoke-result" />}
      {commands && (commands.curl || commands.wsk) && (
        <div className="jp-faas-Commands">
          <h3 className="jp-faas-Subtitle">From a terminal</h3>
          {commands.curl && <CopyableCommand label="curl" text={commands.curl} testid="faas-command-curl" />}
          {commands.wsk && <CopyableCommand label="wsk" text={commands.wsk} testid="faas-command-wsk" />}
        </div>
      )}
    </section>
  );
}

interface ITestProps {
  model: IFunctionsModel;
  name: string;
  cells: ICellAccess;
}

export function TestTab({ model, name, cells }: ITestProps): JSX.Element {
  const kept = cells.testInput(name);
  const [text, setText] = useState(kept ? JSON.stringify(kept) : '{}');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [report, setReport] = useState<ITestReport | null>(null);
  const [where, setWhere] = useState<string | null>(null);
  const info = model.info(name);
  const problem = inputProblem(text);
  const run = async () => {
    if (busy) {
      return;
    }
    setBusy(true);
    setError(null);
    setReport(null);
    const input = parseInput(text);
    try {
      const notebook = await cells.setTestInput(name, input);
      setWhere(notebook ? `Kept as the test input in ${name}'s cell (${notebook}).` : null);
      const inKernel = await cells.testInKernel(name, input);
      if (inKernel) {
        setReport(inKernel);
      } else if (info?.bundle) {
        setReport(await model.testBundle(info.bundle, input));
      } else {
        setError(`${name} has no bundle here to test: deploy its cell from the Functions panel first.`);
      }
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  const passed = report ? (report.ok ?? report.container.status === 'success') : null;
  return (
    <section className="jp-faas-Section" aria-label={`Test ${name}`}>
      <p className="jp-faas-Hint">
        Runs {name} in a local container on this input (and in the notebook's kernel when it is open, for
        the verdict); the input is kept in the cell's metadata and the next deploy tests with it.
      </p>
      <JsonInput
        id={`jp-faas-test-input-${name}`}
        label="Test input (a JSON object)"
        value={text}
        testid="faas-test-input"
        onChange={setText}
        onSubmit={() => void run()}
      />
      <div className="jp-faas-Buttons">
        <Button
          className="jp-mod-styled jp-mod-accept"
          disabled={problem !== null || busy}
          data-testid="faas-test-run"
          onClick={() => void run()}
        >
          {busy ? 'Testing…' : 'Test in a container'}
        </Button>
      </div>
      {where && (
        <p className="jp-faas-Hint" data-testid="faas-test-kept">
          {where}
        </p>
      )}
      {error && (
        <pre className="jp-faas-Error" role="alert" data-testid="faas-test-error">
          {error}
        </pre>
      )}
      {report && (
        <div
          className={`jp-faas-TestReport ${passed ? 'jp-faas-mod-ok' : 'jp-faas-mod-failed'}`}
          data-testid="faas-test-report"
          data-verdict={report.verdict}
          data-ok={String(passed)}
        >
          <p className={passed ? 'jp-faas-Verdict' : 'jp-faas-FailureHeadline'} data-testid="faas-test-verdict">
            {report.error?.headline ?? report.message ?? report.verdict}
          </p>
          <p className="jp-faas-ActivationFacts">
            Verdict: <strong>{report.verdict}</strong> · container {report.container.status} in{' '}
            {typeof report.container.seconds === 'number' ? `${report.container.seconds.toFixed(2)} s` : 'n/a'}
          </p>
          {report.error?.traceback && (
            <pre className="jp-faas-Traceback">
              {Array.isArray(report.error.traceback) ? report.error.traceback.join('\n') : report.error.traceback}
            </pre>
          )}
          {report.differences && report.differences.length > 0 && (
            <ul className="jp-faas-Differences">
              {report.differences.map((d, i) => (
                <li key={i}>{d}</li>
              ))}
            </ul>
          )}
          <div className="jp-faas-Columns">
            <div>
              <div className="jp-faas-Label">Container</div>
              <pre data-testid="faas-test-container-result">{JSON.stringify(report.container.result ?? null, null, 2)}</pre>
            </div>
            {report.kernel && (
              <div>
                <div className="jp-faas-Label">Kernel</div>
                <pre data-testid="faas-test-kernel-result">
                  {report.kernel.ok ? JSON.stringify(report.kernel.result ?? null, null, 2) : report.kernel.error}
                </pre>
              </div>
            )}
          </div>
          {report.container.logs.length > 0 && (
            <>
              <div className="jp-faas-Label">Container logs</div>
              <pre>{report.container.logs.join('\n')}</pre>
            </>
          )}
        </div>
      )}
    </section>
  );
}
