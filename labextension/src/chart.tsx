/**
 * A function's activations over time as plain SVG: one bar per activation, oldest on the
 * left, its height the duration; warm and cold starts in two fills, failures in the error
 * colour with a cross above. No chart library: a few dozen rects.
 */
import React from 'react';

import { clock, duration, isFailure } from './format';
import { IActivationSummary } from './tokens';

const WIDTH = 720;
const HEIGHT = 140;
const AXIS = 60;
const TOP = 14;
const BOTTOM = 18;
/** Widest a bar gets, so three activations do not look like a wall. */
const MAX_BAR = 24;

interface IChartProps {
  activations: ReadonlyArray<IActivationSummary>;
  selected: string | null;
  onSelect: (activation: IActivationSummary) => void;
}

/** The activations (newest first, as listed) as a bar chart, oldest left. */
export function ActivationChart({ activations, selected, onSelect }: IChartProps): JSX.Element {
  const runs = [...activations].reverse();
  const longest = Math.max(1, ...runs.map(a => a.duration ?? 0));
  const plotWidth = WIDTH - AXIS - 4;
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const slot = runs.length ? plotWidth / runs.length : plotWidth;
  const bar = Math.max(2, Math.min(MAX_BAR, slot * 0.7));
  const y = (ms: number) => TOP + plotHeight - (plotHeight * ms) / longest;
  const failures = runs.filter(a => isFailure(a.status)).length;
  const colds = runs.filter(a => a.cold).length;
  const summary =
    `${runs.length} activations, ${failures} failed, ${colds} cold; ` + `longest ${duration(longest)}`;
  return (
    <figure className="jp-faas-Chart" data-testid="faas-chart">
      <svg
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        role="img"
        aria-label={`Duration of each activation over time: ${summary}`}
        preserveAspectRatio="xMinYMid meet"
      >
        <line className="jp-faas-ChartAxis" x1={AXIS} y1={TOP} x2={AXIS} y2={TOP + plotHeight} />
        <line
          className="jp-faas-ChartAxis"
          x1={AXIS}
          y1={TOP + plotHeight}
          x2={WIDTH - 4}
          y2={TOP + plotHeight}
        />
        <text className="jp-faas-ChartLabel" x={AXIS - 4} y={TOP + 4} textAnchor="end">
          {duration(longest)}
        </text>
        <text className="jp-faas-ChartLabel" x={AXIS - 4} y={TOP + plotHeight} textAnchor="end">
          0
        </text>
        {runs.length > 0 && (
          <>
            <text className="jp-faas-ChartLabel" x={AXIS} y={HEIGHT - 4}>
              {clock(runs[0].start)}
            </text>
            <text className="jp-faas-ChartLabel" x={WIDTH - 4} y={HEIGHT - 4} textAnchor="end">
              {clock(runs[runs.length - 1].start)}
            </text>
          </>
        )}
        {runs.map((a, i) => {
          const failed = isFailure(a.status);
          const ms = a.duration ?? 0;
          const x = AXIS + slot * i + (slot - bar) / 2;
          const top = Math.min(y(ms), TOP + plotHeight - 2);
          const kind = failed ? 'failed' : a.cold ? 'cold' : 'warm';
          return (
            <g
              key={a.activationId}
              className={`jp-faas-ChartBar jp-faas-mod-${kind}${a.activationId === selected ? ' jp-mod-selected' : ''}`}
              data-testid="faas-chart-bar"
              data-activation={a.activationId}
              data-kind={kind}
              data-cold={String(a.cold)}
              onClick={() => onSelect(a)}
            >
              <title>
                {`${a.status}, ${duration(a.duration)}, ${a.cold ? 'cold' : 'warm'} start at ${clock(a.start)}` +
                  (a.version ? `, version ${a.version}` : '') +
                  (a.cause?.label ? `, by ${a.cause.label}` : '')}
              </title>
              <rect x={x} y={top} width={bar} height={TOP + plotHeight - top} rx={1} />
              {failed && (
                <text className="jp-faas-ChartCross" x={x + bar / 2} y={top - 2} textAnchor="middle">
                  ×
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption className="jp-faas-ChartLegend">
        <span className="jp-faas-Key jp-faas-mod-warm">warm</span>
        <span className="jp-faas-Key jp-faas-mod-cold">cold start</span>
        <span className="jp-faas-Key jp-faas-mod-failed">failed</span>
        <span className="jp-faas-ChartSummary">{summary}</span>
      </figcaption>
    </figure>
  );
}
