/**
 * Renders one healthcare form response (PHI) as a PDF for the reference service.
 *
 * Two renderers share one contract, {@link PdfRenderer}:
 *  - {@link PdfLibRenderer} draws the PDF in process with `pdf-lib` and its standard Helvetica
 *    fonts: no network, no browser, nothing leaves the process.
 *  - {@link GotenbergRenderer} turns the response into a self-contained HTML document
 *    ({@link renderResponseHtml}) and has a Gotenberg 8 server print it with Chromium.
 *
 * Neither one puts answers anywhere but the document itself: the PDF metadata carries the form
 * title only, and errors carry statuses, never response bodies or answer text, so PHI does not
 * reach logs.
 */
import { PDFDocument, StandardFonts, rgb, type PDFFont, type PDFPage } from 'pdf-lib';

/** The kinds of field a form can have; `checkbox` answers render as Yes/No. */
export type FieldType = 'text' | 'textarea' | 'number' | 'date' | 'email' | 'phone' | 'select' | 'checkbox';

/** One field of a form: `name` is the key of its answer in {@link PdfInput.answers}. */
export interface FormField {
  name: string;
  label: string;
  type: FieldType;
  /** The choices of a `select`; informational only (an answer outside them is still shown). */
  options?: string[];
}

/** Everything a renderer needs for one response. The answers are PHI. */
export interface PdfInput {
  formTitle: string;
  /** The fields in display order; answers without a field are not rendered. */
  fields: readonly FormField[];
  /** Answers by field name, as submitted (JSON values). A missing, null or blank answer renders as an em dash. */
  answers: Readonly<Record<string, unknown>>;
  responseId: string;
  /** Must be a valid Date; rendered in UTC (ISO 8601). */
  submittedAt: Date;
}

/** Renders a form response to the bytes of a PDF document. */
export interface PdfRenderer {
  /**
   * Resolves with the PDF (starting `%PDF-`). Rejects with `signal.reason` once `signal` is
   * aborted, and with an Error whose message contains no answer text when rendering fails.
   */
  render(input: PdfInput, signal?: AbortSignal): Promise<Uint8Array>;
}

/** What a missing answer renders as. */
const MISSING = '\u2014';

// ---------------------------------------------------------------------------------------------
// Answer formatting, shared by both renderers
// ---------------------------------------------------------------------------------------------

const TRUE_WORDS = new Set(['true', 'on', 'yes', '1', 'checked']);

/** The display text of one answer: checkbox as Yes/No, missing/null/blank as an em dash. */
function formatAnswer(field: FormField, value: unknown): string {
  if (value === undefined || value === null) return MISSING;
  if (field.type === 'checkbox') {
    if (typeof value === 'boolean') return value ? 'Yes' : 'No';
    if (typeof value === 'number') return value !== 0 ? 'Yes' : 'No';
    if (typeof value === 'string') {
      if (value.trim() === '') return MISSING;
      return TRUE_WORDS.has(value.trim().toLowerCase()) ? 'Yes' : 'No';
    }
  }
  const text = formatValue(value);
  return text.trim() === '' ? MISSING : text;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? 'Yes' : 'No';
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? '' : value.toISOString();
  if (Array.isArray(value)) {
    return value
      .filter((item) => item !== undefined && item !== null)
      .map((item) => formatValue(item))
      .filter((item) => item.trim() !== '')
      .join(', ');
  }
  if (value === undefined || value === null) return '';
  try {
    // undefined for a function or a symbol, whatever the declared return type says.
    const json: unknown = JSON.stringify(value);
    return typeof json === 'string' ? json : '';
  } catch {
    // A cycle or a bigint inside an object: not something a submitted JSON answer can hold.
    return '';
  }
}

/** `submittedAt` in UTC, ISO 8601; a TypeError for an invalid Date (a caller bug, not PHI). */
function formatSubmittedAt(submittedAt: Date): string {
  if (!(submittedAt instanceof Date) || Number.isNaN(submittedAt.getTime())) {
    throw new TypeError('submittedAt is not a valid Date');
  }
  return submittedAt.toISOString();
}

// ---------------------------------------------------------------------------------------------
// pdf-lib
// ---------------------------------------------------------------------------------------------

/** A4 in PDF points. */
const PAGE_WIDTH = 595.28;
const PAGE_HEIGHT = 841.89;
const MARGIN = 56;
const FOOTER_SIZE = 8;
const CONTENT_BOTTOM = MARGIN + FOOTER_SIZE * 2;
const CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN;
const LINE_FACTOR = 1.3;

const TEXT_COLOR = rgb(0, 0, 0);
const MUTED_COLOR = rgb(0.35, 0.35, 0.35);

const LINE_BREAK = /\r\n|[\n\r\v\f\u0085\u2028\u2029]/;

interface TextStyle {
  readonly font: PDFFont;
  readonly size: number;
  readonly color: ReturnType<typeof rgb>;
}

/**
 * Renders with `pdf-lib` in process: A4 pages, the title, response id and submission time, then
 * each field's label and answer, wrapped to the page width over as many pages as it takes.
 *
 * The standard Helvetica fonts encode WinAnsi (Latin-1 plus a few typographic characters) only:
 * anything else (emoji, CJK, control characters) is drawn as `?` rather than failing the render.
 * The document metadata holds the form title, producer and creator `gatehouse`, and the creation
 * time; no answer, id or name.
 */
export class PdfLibRenderer implements PdfRenderer {
  async render(input: PdfInput, signal?: AbortSignal): Promise<Uint8Array> {
    signal?.throwIfAborted();
    const submittedAt = formatSubmittedAt(input.submittedAt);

    const doc = await PDFDocument.create();
    doc.setTitle(input.formTitle, { showInWindowTitleBar: true });
    doc.setProducer('gatehouse');
    doc.setCreator('gatehouse');
    doc.setLanguage('en');

    const regular = await doc.embedFont(StandardFonts.Helvetica);
    const bold = await doc.embedFont(StandardFonts.HelveticaBold);
    const layout = new Layout(doc, regular, signal);

    layout.paragraph(input.formTitle, { font: bold, size: 16, color: TEXT_COLOR });
    layout.gap(4);
    const meta: TextStyle = { font: regular, size: 9, color: MUTED_COLOR };
    layout.paragraph(`Response ID: ${input.responseId}`, meta);
    layout.paragraph(`Submitted: ${submittedAt}`, meta);
    layout.gap(6);
    layout.rule();
    layout.gap(12);

    const label: TextStyle = { font: bold, size: 10, color: MUTED_COLOR };
    const answer: TextStyle = { font: regular, size: 11, color: TEXT_COLOR };
    for (const field of input.fields) {
      signal?.throwIfAborted();
      // Keep a label with the first line of its answer.
      layout.reserve(lineHeight(label) + lineHeight(answer));
      layout.paragraph(field.label, label);
      layout.gap(2);
      layout.paragraph(formatAnswer(field, answerOf(input.answers, field.name)), answer);
      layout.gap(10);
    }

    layout.footers({ font: regular, size: FOOTER_SIZE, color: MUTED_COLOR }, input.responseId);
    signal?.throwIfAborted();
    const bytes = await doc.save();
    signal?.throwIfAborted();
    return bytes;
  }
}

function lineHeight(style: TextStyle): number {
  return style.size * LINE_FACTOR;
}

/** A cursor over the pages: writes lines top to bottom and adds a page when one is full. */
class Layout {
  private page: PDFPage;
  /** The top of the next line. */
  private y = PAGE_HEIGHT - MARGIN;
  /** Code points each font can encode (both standard fonts share WinAnsi). */
  private readonly encodable: ReadonlySet<number>;

  constructor(
    private readonly doc: PDFDocument,
    font: PDFFont,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.encodable = new Set(font.getCharacterSet());
    this.page = this.newPage();
  }

  private newPage(): PDFPage {
    this.signal?.throwIfAborted();
    this.page = this.doc.addPage([PAGE_WIDTH, PAGE_HEIGHT]);
    this.y = PAGE_HEIGHT - MARGIN;
    return this.page;
  }

  /** Starts a new page unless `height` more points fit on this one. */
  reserve(height: number): void {
    if (this.y - height < CONTENT_BOTTOM) this.newPage();
  }

  gap(points: number): void {
    this.y -= points;
  }

  rule(): void {
    this.reserve(1);
    this.page.drawLine({
      start: { x: MARGIN, y: this.y },
      end: { x: PAGE_WIDTH - MARGIN, y: this.y },
      thickness: 0.5,
      color: MUTED_COLOR,
    });
  }

  /** Draws `text` wrapped to the content width, keeping its line breaks. */
  paragraph(text: string, style: TextStyle): void {
    const height = lineHeight(style);
    for (const line of this.wrap(text, style)) {
      this.reserve(height);
      this.y -= height;
      if (line !== '') {
        // The baseline sits a quarter of the line height above the bottom of the line box.
        this.page.drawText(line, { x: MARGIN, y: this.y + height / 4, ...style });
      }
    }
  }

  /** "Response … · Page i of n" at the foot of every page. */
  footers(style: TextStyle, responseId: string): void {
    const pages = this.doc.getPages();
    // Long ids are cut so that the footer stays on one line (a cut surrogate pair draws as ?).
    const id = this.encode(responseId.length > 40 ? `${responseId.slice(0, 40)}\u2026` : responseId);
    pages.forEach((page, index) => {
      const text = `Response ${id} \u00b7 Page ${index + 1} of ${pages.length}`;
      page.drawText(text, { x: MARGIN, y: MARGIN, ...style });
    });
  }

  /** Replaces every character the standard fonts cannot encode with `?`; tabs become spaces. */
  private encode(text: string): string {
    let out = '';
    for (const char of text.normalize('NFC')) {
      if (char === '\t') out += ' ';
      else out += this.encodable.has(char.codePointAt(0) ?? -1) ? char : '?';
    }
    return out;
  }

  /** Greedy word wrap; a word wider than a line is broken between characters. */
  private wrap(text: string, style: TextStyle): string[] {
    const fits = (line: string): boolean => style.font.widthOfTextAtSize(line, style.size) <= CONTENT_WIDTH;
    const lines: string[] = [];
    for (const paragraph of text.split(LINE_BREAK)) {
      this.signal?.throwIfAborted();
      let line = '';
      for (const word of this.encode(paragraph).split(' ')) {
        const candidate = line === '' ? word : `${line} ${word}`;
        if (fits(candidate)) {
          line = candidate;
          continue;
        }
        if (line !== '') lines.push(line);
        line = '';
        if (fits(word)) {
          line = word;
          continue;
        }
        for (const char of word) {
          if (line !== '' && !fits(line + char)) {
            lines.push(line);
            line = '';
          }
          line += char;
        }
      }
      lines.push(line);
    }
    return lines;
  }
}

// ---------------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------------

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes `&`, `<`, `>`, `"` and `'`: safe in element content and in quoted attribute values. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char] ?? char);
}

const STYLE = `
  @page { size: A4; margin: 20mm; }
  * { box-sizing: border-box; }
  body { margin: 0; color: #000; font: 11pt/1.35 Helvetica, Arial, 'Liberation Sans', sans-serif; }
  h1 { margin: 0 0 4pt; font-size: 16pt; overflow-wrap: anywhere; }
  .meta { margin: 0 0 8pt; color: #595959; font-size: 9pt; overflow-wrap: anywhere; }
  hr { border: 0; border-top: 0.5pt solid #595959; margin: 0 0 12pt; }
  dl { margin: 0; }
  .field { margin: 0 0 10pt; break-inside: avoid-page; }
  dt { color: #595959; font-size: 10pt; font-weight: bold; overflow-wrap: anywhere; }
  dd { margin: 2pt 0 0; white-space: pre-wrap; overflow-wrap: anywhere; }
`;

/**
 * The response as one complete, self-contained HTML document: inline CSS only, no scripts, no
 * external resources (a Content-Security-Policy of `default-src 'none'` says so to the browser),
 * and every interpolated value HTML-escaped. Line breaks in answers are kept.
 */
/** The answer to a field: own properties only (a field named `constructor` is just a name). */
function answerOf(answers: Readonly<Record<string, unknown>>, name: string): unknown {
  return Object.hasOwn(answers, name) ? answers[name] : undefined;
}

export function renderResponseHtml(input: PdfInput): string {
  const submittedAt = escapeHtml(formatSubmittedAt(input.submittedAt));
  const fields = input.fields
    .map(
      (field) =>
        `<div class="field"><dt>${escapeHtml(field.label)}</dt>` +
        `<dd>${escapeHtml(formatAnswer(field, answerOf(input.answers, field.name)))}</dd></div>`,
    )
    .join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(input.formTitle)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(input.formTitle)}</h1>
<p class="meta">Response ID: ${escapeHtml(input.responseId)}<br>Submitted: <time datetime="${submittedAt}">${submittedAt}</time></p>
<hr>
<dl>
${fields}
</dl>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------
// Gotenberg
// ---------------------------------------------------------------------------------------------

/** Gotenberg 8's route that prints an uploaded `index.html` with Chromium. */
const GOTENBERG_HTML_ROUTE = '/forms/chromium/convert/html';
const DEFAULT_TIMEOUT_MS = 30_000;
/** The largest delay a Node timer takes. */
const MAX_TIMEOUT_MS = 2_147_483_647;
const PDF_MAGIC = [0x25, 0x50, 0x44, 0x46, 0x2d]; // %PDF-
const PAPER: readonly (readonly [string, string])[] = [
  ['paperWidth', '8.27'],
  ['paperHeight', '11.7'],
  ['marginTop', '0.79'],
  ['marginBottom', '0.79'],
  ['marginLeft', '0.79'],
  ['marginRight', '0.79'],
];

/** Options of {@link GotenbergRenderer}. */
export interface GotenbergRendererOptions {
  /** How long one render may take, answer body included; default 30000 ms. */
  timeoutMs?: number;
}

/**
 * Renders through a Gotenberg 8 server: POSTs {@link renderResponseHtml}'s document as the
 * multipart file `index.html` to `<baseUrl>/forms/chromium/convert/html` and returns the PDF it
 * answers with.
 *
 * Each render is bounded by `timeoutMs` and by the caller's signal. A caller's abort rejects
 * with `signal.reason`; a timeout, an unreachable server, a non-2xx status or an answer that is
 * not a PDF reject with an Error that names the failure (and the status) but never includes
 * Gotenberg's response body or any answer text. Redirects are refused, so the PHI goes to
 * `baseUrl` and nowhere else.
 */
export class GotenbergRenderer implements PdfRenderer {
  private readonly endpoint: string;
  private readonly timeoutMs: number;

  /**
   * @param baseUrl - the Gotenberg server, `http:` or `https:`, optionally under a path prefix;
   *   a trailing slash is fine. Credentials, a query or a fragment are refused.
   * @throws TypeError when `baseUrl` is not such a URL; RangeError when `timeoutMs` is not a
   *   positive integer number of milliseconds.
   */
  constructor(baseUrl: string, options: GotenbergRendererOptions = {}) {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new TypeError('Gotenberg base URL is not a valid URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`Gotenberg base URL must be http: or https:, not ${url.protocol}`);
    }
    if (url.username !== '' || url.password !== '') {
      throw new TypeError('Gotenberg base URL must not contain credentials');
    }
    if (url.search !== '' || url.hash !== '') {
      throw new TypeError('Gotenberg base URL must not have a query or a fragment');
    }
    this.endpoint = `${url.origin}${url.pathname.replace(/\/+$/, '')}${GOTENBERG_HTML_ROUTE}`;

    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) {
      throw new RangeError(`timeoutMs must be a positive integer up to ${MAX_TIMEOUT_MS}`);
    }
    this.timeoutMs = timeoutMs;
  }

  async render(input: PdfInput, signal?: AbortSignal): Promise<Uint8Array> {
    signal?.throwIfAborted();
    const form = new FormData();
    form.append(
      'files',
      new Blob([renderResponseHtml(input)], { type: 'text/html; charset=utf-8' }),
      'index.html',
    );
    // A4 with 20 mm margins, in inches, as the document's @page rule says too.
    for (const [name, value] of PAPER) form.append(name, value);

    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
    const failed = (what: string, cause: unknown): unknown => {
      if (signal?.aborted === true) return signal.reason;
      if (timeout.aborted) return new Error(`Gotenberg did not answer within ${this.timeoutMs} ms`);
      return new Error(`Gotenberg ${what} failed`, { cause });
    };

    let response: Response;
    try {
      response = await fetch(this.endpoint, {
        method: 'POST',
        body: form,
        signal: combined,
        redirect: 'error',
      });
    } catch (error) {
      throw failed('request', error);
    }
    if (!response.ok) {
      // Gotenberg's error bodies can echo the document: drop the body unread.
      await response.body?.cancel().catch(() => undefined);
      throw new Error(`Gotenberg answered HTTP ${response.status}`);
    }
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      throw failed('response', error);
    }
    if (!PDF_MAGIC.every((byte, index) => bytes[index] === byte)) {
      throw new Error('Gotenberg answered with something that is not a PDF');
    }
    return bytes;
  }
}

/**
 * The service's renderer: {@link GotenbergRenderer} when `gotenbergUrl` is set (not empty),
 * {@link PdfLibRenderer} otherwise.
 *
 * @throws TypeError when `gotenbergUrl` is set but not an http(s) URL.
 */
export function createPdfRenderer(gotenbergUrl: string | undefined): PdfRenderer {
  const url = gotenbergUrl?.trim();
  return url === undefined || url === '' ? new PdfLibRenderer() : new GotenbergRenderer(url);
}
