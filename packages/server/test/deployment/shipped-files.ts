/**
 * Readers of the deployment files as shipped: docker-compose.yml (its services, and the gatehouse
 * service's environment with compose's interpolation done), the Dockerfile's instructions by
 * stage, and docs/redis/users.acl and docs/redis/redis-gatehouse.conf line by line.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { parse } from 'yaml';

export const root = new URL('../../../../', import.meta.url);
export const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

export const PLACEHOLDERS = {
  gatehouse: '#REPLACE_WITH_SHA256_OF_GATEHOUSE_PASSWORD',
  'gh-auditor': '#REPLACE_WITH_SHA256_OF_AUDITOR_PASSWORD',
} as const;

interface ComposeService {
  image?: string;
  build?: string | { context?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null>;
  volumes?: string[];
  depends_on?: Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[] };
}

export function compose(): { services: Record<string, ComposeService> } {
  return parse(read('docker-compose.yml')) as { services: Record<string, ComposeService> };
}

export function text(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(' ') : (value ?? '');
}

/** Plausible values for the variables compose interpolates from .env. */
export const COMPOSE_INPUTS: Record<string, string> = {
  GATEHOUSE_REDIS_PASSWORD: 'a'.repeat(64),
  GATEHOUSE_AUDITOR_PASSWORD: 'b'.repeat(64),
  POSTGRES_PASSWORD: 'c'.repeat(64),
  SECRET_KEYS: `${'d'.repeat(64)},${'e'.repeat(64)}`,
};

/** Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`, from COMPOSE_INPUTS. */
function interpolate(value: string): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}/g, (_match, name: string) => {
    const input = COMPOSE_INPUTS[name];
    assert.ok(input !== undefined, `docker-compose.yml interpolates \${${name}}, unknown to this test`);
    return input;
  });
}

export function gatehouseEnvironment(): Record<string, string> {
  const environment = compose().services.gatehouse?.environment ?? {};
  return Object.fromEntries(
    Object.entries(environment).map(([name, value]) => [name, interpolate(String(value ?? ''))]),
  );
}

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** The Dockerfile's instructions by stage (continuation lines joined, comments dropped). */
export function dockerStages(): Instruction[][] {
  const joined = read('Dockerfile')
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const stages: Instruction[][] = [];
  for (const line of joined.split('\n')) {
    const match = /^\s*([A-Za-z]+)\s+(.*\S)\s*$/.exec(line);
    if (!match) continue;
    const instruction = {
      keyword: (match[1] ?? '').toUpperCase(),
      args: (match[2] ?? '').replace(/\s+/g, ' '),
    };
    if (instruction.keyword === 'FROM') stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  return stages;
}

export function args(stage: readonly Instruction[], keyword: string): string[] {
  return stage
    .filter((instruction) => instruction.keyword === keyword)
    .map((instruction) => instruction.args);
}

export function aclLines(): string[] {
  return read('docs/redis/users.acl')
    .split('\n')
    .filter((line) => line !== '');
}

export function userLine(name: string): string {
  const line = aclLines().find((candidate) => candidate.startsWith(`user ${name} `));
  assert.ok(line, `users.acl has user ${name}`);
  return line;
}

export function confDirectives(): string[] {
  return read('docs/redis/redis-gatehouse.conf')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}
