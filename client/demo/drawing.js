/**
 * The canvas agent's result as SVG. Geometry as backend/agents/canvas.py documents it: x/y is the top-left
 * corner of a shape's bounding box, or the start point of a line or arrow whose width/height is the delta
 * to its end; a text object's fill is its text colour; labels sit centred inside their shape.
 */

const SVG_NS = 'http://www.w3.org/2000/svg';
const COLOUR = /^#(?:[0-9a-f]{3}|[0-9a-f]{6}|[0-9a-f]{8})$/i;
// The server sizes text for an average sans-serif font with these proportions (canvas.py).
const CHAR_WIDTH_EM = 0.6;
const LINE_HEIGHT_EM = 1.4;
const MIN_FONT_PX = 8;
// A five-pointed star's inner radius relative to its outer one.
const STAR_INNER_RATIO = 0.382;

let drawingCounter = 0;

/**
 * @param {string} name
 * @param {Record<string, string | number>} [attributes]
 * @returns {SVGElement}
 */
function svg(name, attributes = {}) {
	const element = document.createElementNS(SVG_NS, name);
	for (const [key, value] of Object.entries(attributes)) {
		element.setAttribute(key, String(value));
	}

	return element;
}

/**
 * A colour from the server, or `fallback` when it is not one we recognise.
 * @param {unknown} value
 * @param {string} fallback
 */
function colour(value, fallback) {
	if (value === 'none' || value === 'transparent') {
		return value;
	}

	return typeof value === 'string' && COLOUR.test(value) ? value : fallback;
}

/**
 * Black or white, whichever reads better on `background`.
 * @param {string} background
 */
function textColourOn(background) {
	if (!COLOUR.test(background)) {
		return '#1b1b1b';
	}

	let hex = background.slice(1, 7);
	if (hex.length === 3) {
		hex = [...hex].map((digit) => digit + digit).join('');
	}

	const [r, g, b] = [0, 2, 4].map((index) => Number.parseInt(hex.slice(index, index + 2), 16) / 255);
	const luminance = (0.2126 * r) + (0.7152 * g) + (0.0722 * b);
	return luminance > 0.5 ? '#1b1b1b' : '#ffffff';
}

/**
 * Points of a five-pointed star stretched to fill the box, one point straight up.
 * @param {number} x
 * @param {number} y
 * @param {number} width
 * @param {number} height
 */
function starPoints(x, y, width, height) {
	const unit = [];
	for (let index = 0; index < 10; index += 1) {
		const angle = (-Math.PI / 2) + (index * Math.PI / 5);
		const radius = index % 2 === 0 ? 1 : STAR_INNER_RATIO;
		unit.push([radius * Math.cos(angle), radius * Math.sin(angle)]);
	}

	const minX = Math.min(...unit.map(([ux]) => ux));
	const maxX = Math.max(...unit.map(([ux]) => ux));
	const minY = Math.min(...unit.map(([, uy]) => uy));
	const maxY = Math.max(...unit.map(([, uy]) => uy));
	return unit
		.map(([ux, uy]) => `${round(x + ((ux - minX) / (maxX - minX) * width))},${round(y + ((uy - minY) / (maxY - minY) * height))}`)
		.join(' ');
}

/** @param {number} value */
function round(value) {
	return Math.round(value * 10) / 10;
}

/**
 * Where a label goes inside each kind of shape, as shares of the bounding box: the centre of the widest
 * band that stays inside the outline, and that band's width.
 */
const LABEL_BOX = {
	rect: {centreY: 0.5, widthShare: 0.9, heightShare: 0.6},
	ellipse: {centreY: 0.5, widthShare: 0.7, heightShare: 0.45},
	triangle: {centreY: 0.68, widthShare: 0.5, heightShare: 0.3},
	star: {centreY: 0.55, widthShare: 0.4, heightShare: 0.25},
};

/**
 * A text element centred on (cx, cy), its font as large as fits `maxWidth` and `maxFont`.
 * @param {string} content
 * @param {{cx: number, cy: number, maxWidth: number, maxFont: number, fill: string}} box
 */
function centredText(content, {cx, cy, maxWidth, maxFont, fill}) {
	const lines = content.split('\n');
	const longest = Math.max(1, ...lines.map((line) => line.length));
	const fontPx = Math.max(MIN_FONT_PX, Math.min(maxFont / lines.length, maxWidth / (longest * CHAR_WIDTH_EM)));
	const text = svg('text', {
		x: round(cx),
		y: round(cy - ((lines.length - 1) * fontPx * LINE_HEIGHT_EM / 2)),
		'font-size': round(fontPx),
		fill,
		'text-anchor': 'middle',
		'dominant-baseline': 'central',
	});
	lines.forEach((line, index) => {
		const span = svg('tspan', {x: round(cx), dy: index === 0 ? 0 : round(fontPx * LINE_HEIGHT_EM)});
		span.textContent = line;
		text.append(span);
	});
	return text;
}

/**
 * The marker that draws arrowheads in `stroke`, created once per colour per drawing.
 * @param {SVGElement} defs
 * @param {Map<string, string>} markers colour -> marker id
 * @param {string} prefix unique per drawing, since ids are document-wide
 * @param {string} stroke
 */
function arrowhead(defs, markers, prefix, stroke) {
	let id = markers.get(stroke);
	if (!id) {
		id = `${prefix}-arrowhead-${markers.size}`;
		const marker = svg('marker', {
			id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 5, markerHeight: 5, orient: 'auto-start-reverse', markerUnits: 'strokeWidth',
		});
		marker.append(svg('path', {d: 'M0,0 L10,5 L0,10 z', fill: stroke}));
		defs.append(marker);
		markers.set(stroke, id);
	}

	return id;
}

/**
 * One SVG drawing of a canvas result.
 * @param {{objects?: Array<Record<string, any>>, summary?: string}} result
 * @param {{width: number, height: number}} canvas the canvas size the job was asked for, in px
 * @returns {SVGSVGElement}
 */
export function renderDrawing(result, {width, height}) {
	drawingCounter += 1;
	const prefix = `drawing-${drawingCounter}`;
	const root = /** @type {SVGSVGElement} */ (svg('svg', {
		viewBox: `0 0 ${width} ${height}`,
		role: 'img',
		'aria-labelledby': `${prefix}-title`,
		'data-testid': 'job-drawing',
		class: 'drawing-svg',
	}));
	const title = svg('title', {id: `${prefix}-title`});
	title.textContent = result.summary ? `Drawing: ${result.summary}` : 'Drawing';
	const defs = svg('defs');
	root.append(title, defs, svg('rect', {x: 0, y: 0, width, height, class: 'drawing-background'}));

	const strokeWidth = round(Math.max(1.5, Math.min(width, height) / 250));
	/** @type {Map<string, string>} */
	const markers = new Map();
	for (const object of result.objects ?? []) {
		const {type} = object;
		const x = Number(object.x) || 0;
		const y = Number(object.y) || 0;
		const w = Number(object.width) || 0;
		const h = Number(object.height) || 0;
		const stroke = colour(object.stroke, '#333333');
		const fill = colour(object.fill, 'none');
		const group = svg('g', {'data-object-type': String(type), 'data-object-id': String(object.id ?? '')});
		const paint = {fill, stroke, 'stroke-width': strokeWidth, 'stroke-linejoin': 'round'};
		let shape = null;
		switch (type) {
			case 'rect': {
				shape = svg('rect', {x, y, width: w, height: h, rx: round(Math.min(w, h) * 0.06), ...paint});
				break;
			}

			case 'ellipse': {
				shape = svg('ellipse', {cx: round(x + (w / 2)), cy: round(y + (h / 2)), rx: round(w / 2), ry: round(h / 2), ...paint});
				break;
			}

			case 'triangle': {
				shape = svg('polygon', {points: `${round(x + (w / 2))},${y} ${round(x + w)},${round(y + h)} ${x},${round(y + h)}`, ...paint});
				break;
			}

			case 'star': {
				shape = svg('polygon', {points: starPoints(x, y, w, h), ...paint});
				break;
			}

			case 'line':
			case 'arrow': {
				const lineStroke = stroke === 'none' || stroke === 'transparent' ? '#333333' : stroke;
				shape = svg('line', {x1: x, y1: y, x2: round(x + w), y2: round(y + h), stroke: lineStroke, 'stroke-width': strokeWidth, 'stroke-linecap': 'round'});
				if (type === 'arrow') {
					shape.setAttribute('marker-end', `url(#${arrowhead(defs, markers, prefix, lineStroke)})`);
				}

				break;
			}

			case 'text': {
				const content = typeof object.text === 'string' ? object.text : '';
				group.append(centredText(content, {
					cx: x + (w / 2), cy: y + (h / 2), maxWidth: w, maxFont: h / LINE_HEIGHT_EM, fill: colour(object.fill, '#1b1b1b'),
				}));
				break;
			}

			default: {
				// A type this page does not know yet: show its box rather than nothing.
				shape = svg('rect', {x, y, width: w, height: h, fill: 'none', stroke: '#999999', 'stroke-dasharray': '4 4'});
			}
		}

		if (shape) {
			group.append(shape);
		}

		const label = LABEL_BOX[/** @type {keyof typeof LABEL_BOX} */ (type)];
		if (label && typeof object.text === 'string' && object.text !== '') {
			group.append(centredText(object.text, {
				cx: x + (w / 2),
				cy: y + (h * label.centreY),
				maxWidth: w * label.widthShare,
				maxFont: h * label.heightShare,
				fill: textColourOn(fill === 'none' ? '#ffffff' : fill),
			}));
		}

		root.append(group);
	}

	return root;
}
