// Checks the shape of the code that no compiler or linter checks, as part of `npm run lint`:
//
// - no import circle inside any package (static, dynamic and type-only imports all count:
//   a circle of types is still two files that cannot be read apart);
// - no file of code, tests or Lua over MAX_LINES lines, except generated ones (*.generated.ts);
// - no project history in code, tests or docs (issue numbers), and every file a comment or doc
//   names by path exists in the repository.
//
// Usage: node scripts/check-structure.mjs   (exit 1 with one line per problem)
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const MAX_LINES = 600;
const SKIP_DIRS = new Set(['node_modules', 'dist', '.dist-next', 'test-output', '.git']);

function walk(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (SKIP_DIRS.has(entry.name) || entry.name.startsWith('.')) return [];
    const path = join(dir, entry.name);
    return entry.isDirectory() ? walk(path) : [path];
  });
}

const problems = [];
const packages = readdirSync(join(root, 'packages')).map((name) => join(root, 'packages', name));
const codeFiles = [...packages, join(root, 'scripts'), join(root, 'bench')]
  .flatMap(walk)
  .filter((file) => /\.(ts|mts|mjs|js|lua)$/.test(file));

// Lengths.
for (const file of codeFiles) {
  if (file.endsWith('.generated.ts')) continue;
  const lines = readFileSync(file, 'utf8').split('\n').length - 1;
  if (lines > MAX_LINES)
    problems.push(`${relative(root, file)}: ${String(lines)} lines (at most ${String(MAX_LINES)})`);
}

// Import circles, per package (imports across packages go through package names, not paths).
const IMPORT =
  /(?:import|export)\s+(?:type\s+)?(?:[^'"]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

function resolveImport(from, specifier) {
  const target = resolve(dirname(from), specifier);
  for (const candidate of [target, target.replace(/\.js$/, '.ts'), target.replace(/\.mjs$/, '.mts')]) {
    if (existsSync(candidate) && candidate !== dirname(candidate)) return candidate;
  }
  return undefined;
}

for (const pkg of packages) {
  const files = walk(pkg).filter((file) => /\.(ts|mts|mjs|js)$/.test(file));
  const graph = new Map();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const targets = new Set();
    for (const match of text.matchAll(IMPORT)) {
      const target = resolveImport(file, match[1] ?? match[2]);
      if (target !== undefined && target.startsWith(pkg)) targets.add(target);
    }
    graph.set(file, [...targets]);
  }
  for (const circle of circles(graph)) {
    problems.push(`import circle: ${circle.map((file) => relative(root, file)).join(' -> ')}`);
  }
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function circles(graph) {
  let index = 0;
  const indices = new Map();
  const lowLinks = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  function connect(node) {
    indices.set(node, index);
    lowLinks.set(node, index);
    index++;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!indices.has(next)) {
        connect(next);
        lowLinks.set(node, Math.min(lowLinks.get(node), lowLinks.get(next)));
      } else if (onStack.has(next)) {
        lowLinks.set(node, Math.min(lowLinks.get(node), indices.get(next)));
      }
    }
    if (lowLinks.get(node) !== indices.get(node)) return;
    const component = [];
    let member;
    do {
      member = stack.pop();
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || (graph.get(node) ?? []).includes(node)) found.push(component.reverse());
  }
  for (const node of graph.keys()) if (!indices.has(node)) connect(node);
  return found;
}

// History and references. Code comments, tests and docs speak of the code as it is.
const textFiles = [
  ...codeFiles,
  ...[root, join(root, 'docs'), ...packages]
    .flatMap((dir) => (dir === root ? readdirSync(root).map((name) => join(root, name)) : walk(dir)))
    .filter((file) => file.endsWith('.md') && !file.includes('node_modules')),
  join(root, 'Dockerfile'),
  join(root, 'docker-compose.yml'),
  join(root, '.ci', 'run'),
].filter((file, i, all) => existsSync(file) && all.indexOf(file) === i && !file.endsWith('RESULTS.md'));
const HISTORY = /\b(?:issues?|PR|tasks?)\s*#?\d+\b|\bin (?:its|their) own issues?\b/i;
// A path with a folder or a known extension, as written in comments and docs.
const PATH =
  /(?<![\w@/.:<>-])((?:\.{1,2}\/)*(?:[\w.<>-]+\/)*[\w.<>-]+\.(?:md|ts|mjs|js|lua|json|conf|acl|yml|sh))(?![\w/])/g;
const IGNORED_PATHS =
  /^(?:package\.json|tsconfig\.json|node\.js|express\.js|next\.js|bullmq\.js|\w+\.(?:example|local)\.\w+)$/i;

function commentText(file, text) {
  if (file.endsWith('.md') || !/\.(ts|mts|mjs|js|lua)$/.test(file)) return text;
  // Lines of comments only: // ..., /* ... */ blocks and * continuations, and Lua's -- ...
  return text
    .split('\n')
    .map((line) => {
      const match = /^\s*(?:\/\/|\/?\*+|--)(.*)$/.exec(line) ?? /\s\/\/\s(.*)$/.exec(line);
      return match ? match[1] : '';
    })
    .join('\n');
}

// Every file of the repository (tracked or new), for references by a path's last parts.
const repositoryFiles = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], {
  cwd: root,
  encoding: 'utf8',
})
  .split('\n')
  .filter((file) => file !== '' && existsSync(join(root, file)));

function referenceExists(file, reference) {
  // Built files (dist/) exist after a build; an extension alone (`.test.ts`) names a kind of file.
  if (
    /(?:^|\/)dist\//.test(reference) ||
    (reference.startsWith('.') && !reference.startsWith('./') && !reference.startsWith('../'))
  ) {
    return true;
  }
  if (existsSync(resolve(dirname(file), reference))) return true;
  const bare = reference.replace(/^(?:\.\.?\/)+/, '');
  const candidates = [bare, bare.replace(/\.js$/, '.ts')];
  return repositoryFiles.some((path) =>
    candidates.some((candidate) => path === candidate || path.endsWith(`/${candidate}`)),
  );
}

for (const file of textFiles) {
  const text = commentText(file, readFileSync(file, 'utf8'));
  text.split('\n').forEach((line, i) => {
    const where = `${relative(root, file)}:${String(i + 1)}`;
    if (HISTORY.test(line))
      problems.push(`${where}: project history (${HISTORY.exec(line)[0]}); say what the code does`);
    for (const match of line.matchAll(PATH)) {
      const reference = match[1];
      const after = line.slice((match.index ?? 0) + reference.length);
      // `res.json(...)`, `express.json()`: calls, not files.
      // `<primitive>.ts`: a pattern for files to add, not a file.
      if (IGNORED_PATHS.test(reference) || after.startsWith('(') || /[*<]/.test(reference)) continue;
      if (!referenceExists(file, reference))
        problems.push(`${where}: names ${reference}, which is not in the repository`);
    }
  });
}

if (problems.length > 0) {
  console.error(problems.join('\n'));
  console.error(`\n${String(problems.length)} structure problem(s)`);
  process.exit(1);
}
console.log(
  `structure: ${String(codeFiles.length)} files, no circle, none over ${String(MAX_LINES)} lines, no history or dangling reference`,
);
