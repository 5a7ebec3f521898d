/**
 * Rules for the Lua scripts, checked on the files themselves: a documented header, every key
 * from KEYS (in the shared pieces: from parameters the including script fills with KEYS), no
 * dynamic command names, a generated module that is up to date, and an ACL rule that covers
 * exactly what they call.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { aclRule, CLIENT_COMMANDS, scriptCommands } from '../../src/store/acl.js';
import { LUA_SCRIPTS } from '../../src/store/redis/scripts.generated.js';

/** Commands whose first argument is not a key. */
const KEYLESS_COMMANDS = new Set(['TIME', 'PUBLISH', 'ECHO']);

const LUA_DIR = new URL('../../src/lua/', import.meta.url);
const INCLUDES_DIR = new URL('includes/', LUA_DIR);
const luaFiles = (dir: URL) =>
  readdirSync(dir)
    .filter((file) => file.endsWith('.lua'))
    .map((file) => file.slice(0, -'.lua'.length))
    .sort();

function source(name: string): string {
  return readFileSync(new URL(`${name}.lua`, LUA_DIR), 'utf8');
}

function redisCalls(text: string): string[] {
  return [...text.matchAll(/redis\.p?call\(([^)]*)\)/g)].map((match) => match[1] ?? '');
}

/** The shared pieces' functions, with the positions of their key parameters (named `*Key`). */
const includedFunctions = new Map<string, number[]>(
  luaFiles(INCLUDES_DIR).flatMap((name) =>
    [
      ...readFileSync(new URL(`${name}.lua`, INCLUDES_DIR), 'utf8').matchAll(
        /local function (\w+)\(([^)]*)\)/g,
      ),
    ].map((match): [string, number[]] => [
      match[1] ?? '',
      (match[2] ?? '')
        .split(',')
        .map((parameter, i) => (parameter.trim().endsWith('Key') ? i : -1))
        .filter((i) => i >= 0),
    ]),
  ),
);

describe('lua scripts', () => {
  it('ships one script per .lua file, generated from the files as they are', () => {
    const names = luaFiles(LUA_DIR);
    assert.ok(names.length > 0);
    assert.deepEqual(
      LUA_SCRIPTS.map((script) => script.name),
      names,
    );
    const check = spawnSync(process.execPath, ['scripts/generate-lua.mjs', '--check'], {
      cwd: new URL('../../../../', import.meta.url),
      encoding: 'utf8',
    });
    assert.equal(check.status, 0, check.stderr);
  });

  describe('shared pieces (includes)', () => {
    for (const name of luaFiles(INCLUDES_DIR)) {
      it(`${name} takes every key from a *Key parameter and never builds a command name`, () => {
        const text = readFileSync(new URL(`${name}.lua`, INCLUDES_DIR), 'utf8');
        assert.ok(
          text.startsWith(`-- ${name} (included): `),
          'first line is "-- <name> (included): <what it is>"',
        );
        for (const call of redisCalls(text)) {
          const [command, firstArgument] = call.split(',').map((part) => part.trim());
          assert.match(command ?? '', /^'[A-Z]+'$/, `literal command name in redis.call(${call})`);
          if (KEYLESS_COMMANDS.has((command ?? '').slice(1, -1))) continue;
          assert.match(firstArgument ?? '', /^[a-z][A-Za-z]*Key$/, `key parameter in redis.call(${call})`);
        }
      });
    }
  });

  for (const name of luaFiles(LUA_DIR)) {
    describe(name, () => {
      const text = source(name);
      const header = text
        .split('\n')
        .filter((line) => line.startsWith('--'))
        .join('\n');

      it('has a header naming it and documenting KEYS, ARGV and the reply', () => {
        assert.ok(text.startsWith(`-- ${name}: `), 'first line is "-- <name>: <what it does>"');
        const usedKeys = new Set([...text.matchAll(/KEYS\[(\d+)\]/g)].map((match) => Number(match[1])));
        const script = LUA_SCRIPTS.find((candidate) => candidate.name === name);
        assert.ok(script, `${name} is defined`);
        if (script.numberOfKeys === 'variadic') {
          assert.match(header, /^-- KEYS\[i\] /m, 'a variadic script documents KEYS[i]');
          return;
        }
        assert.equal(Math.max(0, ...usedKeys), script.numberOfKeys, 'numberOfKeys matches the KEYS used');
        for (let index = 1; index <= script.numberOfKeys; index++) {
          assert.match(
            header,
            new RegExp(`^-- KEYS\\[${String(index)}\\] `, 'm'),
            `KEYS[${String(index)}] documented`,
          );
        }
        for (const [, index] of text.matchAll(/ARGV\[(\d+)\]/g)) {
          assert.match(
            header,
            new RegExp(`^-- ARGV\\[${String(index)}\\] `, 'm'),
            `ARGV[${String(index)}] documented`,
          );
        }
        assert.match(header, /^-- Returns /m);
      });

      it('takes every key it touches from KEYS and never builds a command name', () => {
        const calls = redisCalls(text);
        assert.ok(calls.length > 0 || text.includes('--- @include'));
        for (const call of calls) {
          const [command, firstArgument] = call.split(',').map((part) => part.trim());
          assert.match(command ?? '', /^'[A-Z]+'$/, `literal command name in redis.call(${call})`);
          const commandName = (command ?? '').slice(1, -1);
          if (KEYLESS_COMMANDS.has(commandName)) continue;
          // A variadic script may index KEYS with arithmetic (`KEYS[first + i]`), never anything else.
          assert.match(
            firstArgument ?? '',
            /^KEYS\[(\d+|[a-z][A-Za-z]*( \+ [a-z][A-Za-z]*)?)\]$/,
            `key from KEYS in redis.call(${call})`,
          );
        }
        // The shared pieces it calls get their keys from KEYS too.
        for (const [fn, keyPositions] of includedFunctions) {
          for (const match of text.matchAll(new RegExp(`\\b${fn}\\(([^)]*)\\)`, 'g'))) {
            const args = (match[1] ?? '').split(',').map((part) => part.trim());
            for (const position of keyPositions) {
              assert.match(
                args[position] ?? '',
                /^KEYS\[\d+\]$/,
                `key from KEYS in ${fn}(${match[1] ?? ''})`,
              );
            }
          }
        }
      });
    });
  }

  it('grants the ACL user exactly the client commands and the commands the scripts call', () => {
    const granted = aclRule('gh')
      .split(' ')
      .filter((rule) => rule.startsWith('+'))
      .map((rule) => rule.slice(1))
      .sort();
    assert.deepEqual(granted, [...new Set([...CLIENT_COMMANDS, ...scriptCommands()])].sort());
    assert.ok(scriptCommands().includes('set'));
  });
});
