import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { inflateSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';

import { PDFDocument, PDFRawStream } from 'pdf-lib';

import {
  GotenbergRenderer,
  PdfLibRenderer,
  createPdfRenderer,
  renderResponseHtml,
  type FormField,
  type PdfInput,
} from '../../src/service/pdf.js';

const FIELDS: readonly FormField[] = [
  { name: 'name', label: 'Full name', type: 'text' },
  { name: 'dob', label: 'Date of birth', type: 'date' },
  { name: 'email', label: 'Email', type: 'email' },
  { name: 'phone', label: 'Phone', type: 'phone' },
  { name: 'age', label: 'Age', type: 'number' },
  { name: 'blood', label: 'Blood type', type: 'select', options: ['A', 'B', 'AB', 'O'] },
  { name: 'consent', label: 'I consent', type: 'checkbox' },
  { name: 'smoker', label: 'Smoker', type: 'checkbox' },
  { name: 'history', label: 'Medical history', type: 'textarea' },
  { name: 'allergies', label: 'Allergies', type: 'text' },
];

function input(overrides: Partial<PdfInput> = {}): PdfInput {
  return {
    formTitle: 'Patient intake',
    fields: FIELDS,
    answers: {
      name: 'Jane Roe',
      dob: '1970-01-01',
      email: 'jane@example.test',
      phone: '+1 555 0100',
      age: 55,
      blood: 'AB',
      consent: true,
      smoker: false,
      history: 'Appendectomy in 1990.\nNo other surgery.',
    },
    responseId: 'resp_0123456789',
    submittedAt: new Date('2025-03-04T05:06:07.000Z'),
    ...overrides,
  };
}

function startsWithPdfMagic(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.subarray(0, 5)).toString('latin1') === '%PDF-';
}

/** Every stream of the document, inflated when it is compressed, as Latin-1 text. */
async function streamText(bytes: Uint8Array): Promise<string> {
  const doc = await PDFDocument.load(bytes);
  let text = '';
  for (const [, object] of doc.context.enumerateIndirectObjects()) {
    if (!(object instanceof PDFRawStream)) continue;
    try {
      text += inflateSync(object.contents).toString('latin1');
    } catch {
      text += Buffer.from(object.contents).toString('latin1');
    }
  }
  return text;
}

/** `text` as the hex string a standard-font Tj draws (all of it is ASCII here). */
function hex(text: string): string {
  return `<${Buffer.from(text, 'latin1').toString('hex').toUpperCase()}>`;
}

describe('PdfLibRenderer', () => {
  const renderer = new PdfLibRenderer();

  it('renders a PDF that pdf-lib loads back, with the title and no PHI in the metadata', async () => {
    const bytes = await renderer.render(input());
    assert.ok(startsWithPdfMagic(bytes));
    // updateMetadata: false, or loading would stamp pdf-lib as the producer.
    const doc = await PDFDocument.load(bytes, { updateMetadata: false });
    assert.equal(doc.getPageCount(), 1);
    const [width, height] = [doc.getPage(0).getWidth(), doc.getPage(0).getHeight()];
    assert.ok(
      Math.abs(width - 595.28) < 0.01 && Math.abs(height - 841.89) < 0.01,
      `A4, not ${width}x${height}`,
    );
    assert.equal(doc.getTitle(), 'Patient intake');
    assert.equal(doc.getProducer(), 'gatehouse');
    assert.equal(doc.getCreator(), 'gatehouse');
    assert.equal(doc.getAuthor(), undefined);
    assert.equal(doc.getSubject(), undefined);
    assert.equal(doc.getKeywords(), undefined);
    assert.ok(
      !Buffer.from(bytes).toString('latin1').includes('Jane'),
      'answers are not in clear in the file',
    );
  });

  it('draws the labels, the answers, Yes/No for checkboxes and an em dash for a missing answer', async () => {
    const text = await streamText(await renderer.render(input()));
    for (const shown of ['Patient intake', 'Full name', 'Jane Roe', 'AB', 'Yes', 'No', 'No other surgery.']) {
      assert.ok(text.includes(hex(shown)), `${shown} is drawn`);
    }
    assert.ok(text.includes(hex('Response ID: resp_0123456789')));
    assert.ok(text.includes(hex('Submitted: 2025-03-04T05:06:07.000Z')));
    assert.ok(text.includes('<97>'), 'the missing allergies answer is an em dash (WinAnsi 0x97)');
  });

  it('wraps a long textarea answer over more pages', async () => {
    const short = await PDFDocument.load(await renderer.render(input()));
    const words = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. ';
    const long = words.repeat(Math.ceil(20_000 / words.length)).slice(0, 20_000);
    const longDoc = await PDFDocument.load(
      await renderer.render(input({ answers: { ...input().answers, history: long } })),
    );
    assert.equal(short.getPageCount(), 1);
    assert.ok(
      longDoc.getPageCount() >= 4,
      `20k characters take several pages, not ${longDoc.getPageCount()}`,
    );
    const text = await streamText(
      await renderer.render(input({ answers: { ...input().answers, history: long } })),
    );
    const pages = longDoc.getPageCount();
    assert.ok(text.includes(hex(`Page ${pages} of ${pages}`).slice(1, -1)), 'footers count pages');
  });

  it('breaks a single word wider than the page', async () => {
    const bytes = await renderer.render(input({ answers: { history: 'x'.repeat(20_000) } }));
    const doc = await PDFDocument.load(bytes);
    assert.ok(doc.getPageCount() >= 3, `${doc.getPageCount()} pages`);
  });

  it('draws characters Helvetica cannot encode as ? instead of throwing', async () => {
    const odd = input({
      formTitle: 'Intake \u{1F600} \u4E2D\u6587',
      fields: [{ name: 'note', label: 'Note \u0000\u0007 \u{1F489}', type: 'text' }],
      answers: { note: 'A\u{1F600}B\u4E2DC\u0007D\tE caf\u0065\u0301 \u20AC5\u2028next' },
      responseId: 'id-\u{1F600}',
    });
    const bytes = await renderer.render(odd);
    const doc = await PDFDocument.load(bytes, { updateMetadata: false });
    assert.equal(doc.getTitle(), 'Intake \u{1F600} \u4E2D\u6587', 'the metadata title is Unicode');
    const text = await streamText(bytes);
    // One ? per code point (the emoji is two UTF-16 units), tab as space, é composed, € kept.
    assert.ok(text.includes(hex('A?B?C?D E caf\u00e9 \u00805')), 'unencodable characters become ?');
    assert.ok(text.includes(hex('next')), 'U+2028 breaks the line');
    assert.ok(text.includes(hex('Note ?? ?')));
  });

  it('rejects with the reason of an aborted signal', async () => {
    const controller = new AbortController();
    controller.abort(new Error('client went away'));
    await assert.rejects(renderer.render(input(), controller.signal), { message: 'client went away' });
    await assert.rejects(renderer.render(input(), AbortSignal.abort()), { name: 'AbortError' });
  });

  it('refuses an invalid submission date', async () => {
    await assert.rejects(renderer.render(input({ submittedAt: new Date(Number.NaN) })), TypeError);
  });
});

describe('renderResponseHtml', () => {
  it('is a complete, self-contained document with every value escaped', () => {
    const html = renderResponseHtml(
      input({
        formTitle: 'Intake & <b>triage</b>',
        fields: [
          { name: 'note', label: 'Say "hello" & it\'s <fine>', type: 'textarea' },
          { name: 'consent', label: 'Consent', type: 'checkbox' },
          { name: 'missing', label: 'Missing', type: 'text' },
        ],
        answers: { note: '<script>alert("x")</script>', consent: 'on' },
        responseId: '"><img src=x onerror=alert(1)>',
      }),
    );
    assert.match(html, /^<!DOCTYPE html>\n<html lang="en">/);
    assert.match(html, /<\/html>\n$/);
    assert.ok(html.includes('<meta charset="utf-8">'));
    assert.ok(html.includes('<title>Intake &amp; &lt;b&gt;triage&lt;/b&gt;</title>'));
    assert.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'));
    assert.ok(html.includes('<dt>Say &quot;hello&quot; &amp; it&#39;s &lt;fine&gt;</dt>'));
    assert.ok(html.includes('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;'));
    assert.ok(html.includes('<dd>Yes</dd>'));
    assert.ok(html.includes('<dd>\u2014</dd>'));
    assert.ok(!/<script/i.test(html), 'no script element');
    assert.ok(!/<img/i.test(html), 'no injected element');
    assert.ok(!/(?:src|href)=/i.test(html.replace(/&lt;img src=x/, '')), 'no external resources');
    assert.ok(!/https?:|\/\//.test(html), 'no URLs');
  });
});

interface SeenRequest {
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly contentType: string;
  readonly body: Buffer;
}

interface FakeServer {
  readonly url: string;
  readonly requests: SeenRequest[];
  close(): Promise<void>;
}

/** A node:http server on 127.0.0.1, port 0, that records requests and answers with `handler`. */
async function fakeGotenberg(handler: (req: SeenRequest, res: ServerResponse) => void): Promise<FakeServer> {
  const requests: SeenRequest[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const seen: SeenRequest = {
        method: req.method,
        url: req.url,
        contentType: req.headers['content-type'] ?? '',
        body: Buffer.concat(chunks),
      };
      requests.push(seen);
      handler(seen, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => {
          if (error) reject(error);
          else resolve();
        });
      }),
  };
}

interface Part {
  readonly headers: string;
  readonly body: string;
}

/** Parses a recorded multipart/form-data body by hand: part headers and UTF-8 bodies by name. */
function parseMultipart(seen: SeenRequest): Map<string, Part> {
  const boundary = /^multipart\/form-data; boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(seen.contentType);
  assert.ok(boundary, `multipart content type, not ${seen.contentType}`);
  const delimiter = `--${boundary[1] ?? boundary[2] ?? ''}`;
  const raw = seen.body.toString('latin1');
  assert.ok(raw.trimEnd().endsWith(`${delimiter}--`), 'the body ends with the closing delimiter');
  const parts = new Map<string, Part>();
  for (const chunk of raw.split(delimiter).slice(1, -1)) {
    assert.ok(chunk.startsWith('\r\n') && chunk.endsWith('\r\n'));
    const end = chunk.indexOf('\r\n\r\n');
    assert.ok(end > 0, 'a part has headers');
    const headers = chunk.slice(2, end);
    const name = /content-disposition: form-data; name="([^"]*)"/i.exec(headers)?.[1];
    assert.ok(name !== undefined, headers);
    parts.set(name, { headers, body: Buffer.from(chunk.slice(end + 4, -2), 'latin1').toString('utf8') });
  }
  return parts;
}

describe('GotenbergRenderer', () => {
  let pdf: Uint8Array;
  let gotenberg: FakeServer;
  let failing: FakeServer;
  let notPdf: FakeServer;
  let silent: FakeServer;

  before(async () => {
    const doc = await PDFDocument.create();
    doc.addPage();
    pdf = await doc.save();
    gotenberg = await fakeGotenberg((req, res) => {
      const valid =
        req.method === 'POST' &&
        req.url === '/forms/chromium/convert/html' &&
        req.contentType.startsWith('multipart/form-data; boundary=') &&
        req.body.includes('name="files"; filename="index.html"');
      if (!valid) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('bad request');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/pdf' }).end(pdf);
    });
    failing = await fakeGotenberg((_req, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('Chromium failed on: SECRET-PHI');
    });
    notPdf = await fakeGotenberg((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html>SECRET-PHI</html>');
    });
    silent = await fakeGotenberg(() => {
      // Never answers.
    });
  });

  after(async () => {
    await Promise.all([gotenberg.close(), failing.close(), notPdf.close(), silent.close()]);
  });

  it('POSTs the escaped HTML as files/index.html and returns the PDF', async () => {
    const doc = input({ answers: { ...input().answers, history: '<script>alert(1)</script>' } });
    // A trailing slash on the base URL is fine.
    const bytes = await new GotenbergRenderer(`${gotenberg.url}/`).render(doc);
    assert.deepEqual(Buffer.from(bytes), Buffer.from(pdf));
    assert.ok(startsWithPdfMagic(bytes));

    const seen = gotenberg.requests.at(-1);
    assert.ok(seen);
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, '/forms/chromium/convert/html');
    assert.match(seen.contentType, /^multipart\/form-data; boundary=/);
    const parts = parseMultipart(seen);
    const file = parts.get('files');
    assert.ok(file, 'a part named files');
    assert.match(file.headers, /content-disposition: form-data; name="files"; filename="index.html"/i);
    assert.match(file.headers, /content-type: text\/html; charset=utf-8/i);
    assert.ok(file.body.includes('<dd>\u2014</dd>'), 'UTF-8 survives');
    assert.equal(file.body, renderResponseHtml(doc));
    assert.ok(file.body.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.equal(parts.get('paperWidth')?.body, '8.27');
    assert.equal(parts.get('paperHeight')?.body, '11.7');
  });

  it('keeps a base path prefix', async () => {
    await assert.rejects(new GotenbergRenderer(`${gotenberg.url}/gotenberg//`).render(input()), {
      message: 'Gotenberg answered HTTP 400',
    });
    assert.equal(gotenberg.requests.at(-1)?.url, '/gotenberg/forms/chromium/convert/html');
  });

  it('throws on an error status with the status and without the body or any answer', async () => {
    const doc = input({ answers: { ...input().answers, name: 'SECRET-PHI' } });
    const error = await new GotenbergRenderer(failing.url).render(doc).then(
      () => assert.fail('expected a rejection'),
      (reason: unknown) => reason,
    );
    assert.ok(error instanceof Error);
    assert.match(error.message, /503/);
    assert.ok(!inspect(error, { depth: 10 }).includes('SECRET-PHI'), inspect(error));
  });

  it('throws when the answer is not a PDF, without the body', async () => {
    const error = await new GotenbergRenderer(notPdf.url).render(input()).then(
      () => assert.fail('expected a rejection'),
      (reason: unknown) => reason,
    );
    assert.ok(error instanceof Error);
    assert.match(error.message, /not a PDF/);
    assert.ok(!inspect(error, { depth: 10 }).includes('SECRET-PHI'));
  });

  it('gives up after timeoutMs when Gotenberg does not answer', async () => {
    const started = performance.now();
    await assert.rejects(new GotenbergRenderer(silent.url, { timeoutMs: 200 }).render(input()), {
      message: 'Gotenberg did not answer within 200 ms',
    });
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 1500, `rejected after ${Math.round(elapsed)} ms`);
  });

  it("rejects with the caller's abort reason, before and during the request", async () => {
    const renderer = new GotenbergRenderer(silent.url);
    const sent = silent.requests.length;
    await assert.rejects(renderer.render(input(), AbortSignal.abort()), { name: 'AbortError' });
    assert.equal(silent.requests.length, sent, 'nothing was sent');

    const controller = new AbortController();
    const started = performance.now();
    setTimeout(() => {
      controller.abort(new Error('request closed'));
    }, 100);
    await assert.rejects(renderer.render(input(), controller.signal), { message: 'request closed' });
    assert.ok(performance.now() - started < 1500);
  });

  it('reports an unreachable server without answer text', async () => {
    const closed = await fakeGotenberg(() => undefined);
    await closed.close();
    const doc = input({ answers: { name: 'SECRET-PHI' } });
    const error = await new GotenbergRenderer(closed.url, { timeoutMs: 5000 }).render(doc).then(
      () => assert.fail('expected a rejection'),
      (reason: unknown) => reason,
    );
    assert.ok(error instanceof Error);
    assert.equal(error.message, 'Gotenberg request failed');
    assert.ok(!inspect(error, { depth: 10 }).includes('SECRET-PHI'));
  });

  it('validates the base URL and the timeout', () => {
    for (const bad of [
      '',
      'not a url',
      'ftp://gotenberg:3000',
      'file:///tmp/x',
      'http://u:p@gotenberg:3000',
    ]) {
      assert.throws(() => new GotenbergRenderer(bad), TypeError, bad);
    }
    assert.throws(() => new GotenbergRenderer('http://gotenberg:3000/?x=1'), TypeError);
    for (const timeoutMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => new GotenbergRenderer('http://gotenberg:3000', { timeoutMs }), RangeError);
    }
    assert.doesNotThrow(() => new GotenbergRenderer('https://gotenberg.internal/'));
  });
});

describe('createPdfRenderer', () => {
  it('uses Gotenberg when a URL is set and pdf-lib otherwise', () => {
    assert.ok(createPdfRenderer(undefined) instanceof PdfLibRenderer);
    assert.ok(createPdfRenderer('') instanceof PdfLibRenderer);
    assert.ok(createPdfRenderer('  ') instanceof PdfLibRenderer);
    assert.ok(createPdfRenderer('http://gotenberg:3000') instanceof GotenbergRenderer);
    assert.throws(() => createPdfRenderer('gotenberg:3000'), TypeError);
  });
});
