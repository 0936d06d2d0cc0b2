/**
 * Small SVG sparklines, drawn by the page itself: one polyline per run of known values.
 */

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * @typedef {object} SparklineOptions
 * @property {string} label what the line shows, for the accessible name
 * @property {number} [min] the bottom of the scale (default: the smallest value)
 * @property {number} [max] the top of the scale (default: the largest value)
 * @property {number} [width] viewBox width
 * @property {number} [height] viewBox height
 * @property {(value: number) => string} [format] how the latest value is spoken
 */

/**
 * Replace the content of `container` with a sparkline of `values`; a null value is a gap.
 * @param {Element} container
 * @param {Array<number | null>} values oldest first
 * @param {SparklineOptions} options
 * @returns {SVGSVGElement}
 */
export function drawSparkline(container, values, {label, min, max, width = 120, height = 40, format = String}) {
	const known = /** @type {number[]} */ (values.filter((value) => value !== null && Number.isFinite(value)));
	const low = min ?? (known.length ? Math.min(...known) : 0);
	const high = max ?? (known.length ? Math.max(...known) : 1);
	const span = high - low || 1;
	const step = values.length > 1 ? width / (values.length - 1) : 0;
	const svg = document.createElementNS(SVG_NS, 'svg');
	svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
	svg.setAttribute('preserveAspectRatio', 'none');
	svg.setAttribute('role', 'img');
	const latest = known.length ? format(known[known.length - 1]) : 'no data yet';
	svg.setAttribute('aria-label', `${label}: ${latest}`);
	svg.dataset.points = String(known.length);
	/** @type {string[]} */
	let run = [];
	const flush = () => {
		if (run.length) {
			const line = document.createElementNS(SVG_NS, 'polyline');
			// A single point still shows, as a dot-sized line.
			line.setAttribute('points', run.length === 1 ? `${run[0]} ${run[0]}` : run.join(' '));
			svg.append(line);
		}

		run = [];
	};

	values.forEach((value, index) => {
		if (value === null || !Number.isFinite(value)) {
			flush();
			return;
		}

		const x = values.length > 1 ? index * step : width / 2;
		const y = height - 2 - ((Math.min(Math.max(value, low), high) - low) / span) * (height - 4);
		run.push(`${x.toFixed(1)},${y.toFixed(1)}`);
	});
	flush();
	container.replaceChildren(svg);
	return svg;
}
