/**
 * Rules for the Lua scripts, checked on the files themselves: a documented header, every key
 * from KEYS, no dynamic command names, and an ACL rule that covers exactly what they call.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { aclRule, CLIENT_COMMANDS, scriptCommands } from '../src/store/acl.js';
// Importing the stores defines every script they use.
import '../src/store/redis.js';
import { definedScripts, LUA_DIR, luaScriptNames } from '../src/store/script.js';

/** Commands whose first argument is not a key. */
const KEYLESS_COMMANDS = new Set(['TIME', 'PUBLISH', 'ECHO']);

function source(name: string): string {
  return readFileSync(new URL(`${name}.lua`, LUA_DIR), 'utf8');
}

describe('lua scripts', () => {
  it('ships at least one script, each defined by a module with its key count', () => {
    const names = luaScriptNames();
    assert.ok(names.length > 0);
    assert.deepEqual(
      definedScripts()
        .map((script) => script.name)
        .sort(),
      names,
    );
  });

  for (const name of luaScriptNames()) {
    describe(name, () => {
      const text = source(name);
      const header = text
        .split('\n')
        .filter((line) => line.startsWith('--'))
        .join('\n');

      it('has a header naming it and documenting KEYS, ARGV and the reply', () => {
        assert.ok(text.startsWith(`-- ${name}: `), 'first line is "-- <name>: <what it does>"');
        const usedKeys = new Set([...text.matchAll(/KEYS\[(\d+)\]/g)].map((match) => Number(match[1])));
        const script = definedScripts().find((candidate) => candidate.name === name);
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
        const calls = [...text.matchAll(/redis\.p?call\(([^)]*)\)/g)].map((match) => match[1] ?? '');
        assert.ok(calls.length > 0);
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
