/**
 * The library's console logger writes pino's shape, so its lines parse like those of a pino
 * logger beside them, and a field can never pass for the level, time or message.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';

import { createConsoleLogger } from '../../src/util/logger.js';

it('writes pino-shaped JSON lines on stderr at its level and above', () => {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  };
  try {
    const logger = createConsoleLogger('warn');
    logger.debug({}, 'not written');
    logger.info({}, 'not written');
    logger.warn({ handle: 'h1', level: 'forged', msg: 'forged' }, 'Redis is not answering');
    logger.error({}, 'failed');
  } finally {
    process.stderr.write = write;
  }
  assert.equal(lines.length, 2);
  const [warn, error] = lines.map((line) => JSON.parse(line) as Record<string, unknown>) as [
    Record<string, unknown>,
    Record<string, unknown>,
  ];
  assert.deepEqual(Object.keys(warn).sort(), ['handle', 'hostname', 'level', 'msg', 'pid', 'time']);
  assert.equal(warn.level, 40);
  assert.equal(warn.msg, 'Redis is not answering');
  assert.equal(warn.pid, process.pid);
  assert.equal(typeof warn.time, 'number');
  assert.equal(error.level, 50);
});
