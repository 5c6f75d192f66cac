/**
 * Runs the test suite in two layers (npm test, npm run test:unit):
 *   unit  `*.unit.test.ts`: pure modules and MemoryStorage, no servers; a child process at most
 *         as small as `sleep` (process-scan); run in parallel (a few seconds);
 *   slow  every other `*.test.ts`: real PostgreSQL, gpg, zstd, s3rver, Pushgateway, Ceph, several
 *         files at a time (--slow-concurrency, default 1); a file whose source says
 *         `// test-layer: alone` (kills a process at a chosen moment, measures an outage) then
 *         runs by itself after the others, so load from its neighbours cannot decide its outcome.
 *   containers  `*.containers.test.ts`: the images and manifests under podman (npm run
 *         test:containers); root, podman and nftables needed, so never part of `all`.
 * `all` runs the unit layer first and stops there if it fails. Test files are found from src/
 * (compiled names in dist/), so a test whose source was deleted or renamed never runs from a
 * stale dist/. Files are passed to `node --test` by name because Node 20 takes no globs.
 *
 *   node dist/testing/run-test-layers.js unit|slow|all|containers [--coverage] [--slow-concurrency=N]
 *
 * --coverage adds Node's coverage table (--experimental-test-coverage) to the unit layer's output.
 * It runs the unit layer from a second build without source maps (dist-coverage/, beside dist/
 * so relative paths to docs/ and bin/ still hold): with tsc's source maps, Node 20.16+ aborts
 * the report ("Cannot read properties of undefined (reading 'line')", nodejs/node#54240). The
 * table then names the compiled .js files, whose lines follow the sources closely.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

type Layer = 'unit' | 'slow' | 'containers';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(ROOT, 'src');
const DIST = join(ROOT, 'dist');
const COVERAGE_DIST = join(ROOT, 'dist-coverage');

/** Every *.test.ts under `dir` (own walk: Dirent.parentPath is missing before Node 20.12). */
function testSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return testSources(path);
      return entry.isFile() && entry.name.endsWith('.test.ts') ? [path] : [];
    })
    .sort();
}

function compiled(source: string, outDir: string): string {
  return join(outDir, relative(SRC, source)).replace(/\.ts$/, '.js');
}

function layerOf(source: string): Layer {
  if (source.endsWith('.unit.test.ts')) return 'unit';
  return source.endsWith('.containers.test.ts') ? 'containers' : 'slow';
}

/** The marker, on a line of its own near the top of a test source, with the reason after it. */
const ALONE = /^\/\/ test-layer: alone\b/m;

function filesOf(layer: Layer, outDir: string, which: 'shared' | 'alone' | 'all' = 'all'): string[] {
  const sources = testSources(SRC)
    .filter((source) => layerOf(source) === layer)
    .filter((source) => which === 'all' || ALONE.test(readFileSync(source, 'utf8').slice(0, 4000)) === (which === 'alone'));
  const files = sources.map((source) => compiled(source, outDir));
  const missing = files.filter((file) => !existsSync(file));
  if (missing.length > 0) {
    throw new Error(`not built: ${missing.map((file) => relative(ROOT, file)).join(', ')}; run npm run build first`);
  }
  return files.map((file) => relative(ROOT, file));
}

async function exitOf(program: string, args: readonly string[]): Promise<number> {
  const child = spawn(program, args, { cwd: ROOT, stdio: 'inherit' });
  return new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 128 : 1)));
  });
}

async function run(layer: Layer, options: { coverage: boolean; slowConcurrency: number }): Promise<number> {
  const coverage = layer === 'unit' && options.coverage;
  if (coverage) {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const built = await exitOf(process.execPath, [tsc, '-p', 'tsconfig.json', '--sourceMap', 'false', '--outDir', COVERAGE_DIST]);
    if (built !== 0) return built;
  }
  const outDir = coverage ? COVERAGE_DIST : DIST;
  // Node's default is availableParallelism() - 1, which is 1 on a 2-core machine: unit tests
  // mostly wait on module loading, so one per core overlaps well.
  const concurrency = layer === 'unit' ? Math.max(2, availableParallelism()) : layer === 'containers' ? 1 : options.slowConcurrency;
  const groups: { files: string[]; concurrency: number; what: string }[] =
    layer === 'unit' || concurrency === 1
      ? [{ files: filesOf(layer, outDir), concurrency, what: '' }]
      : [
          { files: filesOf(layer, outDir, 'shared'), concurrency, what: '' },
          { files: filesOf(layer, outDir, 'alone'), concurrency: 1, what: ' (test-layer: alone)' },
        ];
  const started = Date.now();
  let code = 0;
  for (const group of groups) {
    if (group.files.length === 0) continue;
    const args = ['--test', `--test-concurrency=${group.concurrency}`, ...(coverage ? ['--experimental-test-coverage'] : [])];
    process.stdout.write(`\n# ${layer} layer${group.what}: ${group.files.length} test files, ${group.concurrency} at a time\n`);
    const groupStarted = Date.now();
    const groupCode = await exitOf(process.execPath, [...args, ...group.files]);
    process.stdout.write(`# ${layer} layer${group.what}: exit ${groupCode} in ${((Date.now() - groupStarted) / 1000).toFixed(1)} s\n`);
    // Run the rest even after a failure: CI then shows every failing file at once.
    if (code === 0) code = groupCode;
  }
  process.stdout.write(
    `# ${layer} layer: ${code === 0 ? 'passed' : `failed (exit ${code})`} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
  return code;
}

async function main(argv: readonly string[]): Promise<number> {
  const [which, ...flags] = argv;
  const unknown = flags.filter((flag) => flag !== '--coverage' && !/^--slow-concurrency=[1-9]\d*$/.test(flag));
  if ((which !== 'unit' && which !== 'slow' && which !== 'all' && which !== 'containers') || unknown.length > 0) {
    process.stderr.write('usage: run-test-layers.js unit|slow|all|containers [--coverage] [--slow-concurrency=N]\n');
    return 2;
  }
  const slowFlag = flags.find((flag) => flag.startsWith('--slow-concurrency='));
  // PMS_TEST_SLOW_CONCURRENCY lets .ci/run choose without changing README's test command.
  const fromEnv = /^[1-9]\d*$/.test(process.env['PMS_TEST_SLOW_CONCURRENCY'] ?? '') ? Number(process.env['PMS_TEST_SLOW_CONCURRENCY']) : 1;
  const options = { coverage: flags.includes('--coverage'), slowConcurrency: slowFlag ? Number(slowFlag.split('=')[1]) : fromEnv };
  if (which === 'containers') return run('containers', options);
  if (which !== 'slow') {
    const code = await run('unit', options);
    if (code !== 0 || which === 'unit') {
      if (code !== 0 && which === 'all') process.stdout.write('# slow layer not run: fix the unit layer first\n');
      return code;
    }
  }
  return run('slow', options);
}

process.exitCode = await main(process.argv.slice(2));
