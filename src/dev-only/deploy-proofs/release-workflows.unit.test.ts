import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { DEPLOY_DIR } from './render.js';

/**
 * Release integrity, read from the workflow files as GitHub would parse them: release images are
 * pushed once, by an immutable tag, only after checking the tag is new; their digests are read
 * back and pinned in the prod overlay through a pull request; nothing pushes an image behind the
 * production gate, and the gated job is what moves prod.
 */
interface Step {
  readonly name?: string;
  readonly uses?: string;
  readonly run?: string;
  readonly with?: Record<string, unknown>;
  readonly if?: string;
}
interface Job {
  readonly needs?: string | string[];
  readonly environment?: string | { name: string };
  readonly if?: string;
  readonly steps: Step[];
}
interface Workflow {
  readonly on: Record<string, any>;
  readonly jobs: Record<string, Job>;
}

const WORKFLOWS_DIR = join(DEPLOY_DIR, '..', '.github', 'workflows');
const workflows = new Map<string, Workflow>(
  readdirSync(WORKFLOWS_DIR)
    .filter((f) => f.endsWith('.yml'))
    .map((f) => [f, parse(readFileSync(join(WORKFLOWS_DIR, f), 'utf8')) as Workflow]),
);

function workflow(file: string): Workflow {
  const found = workflows.get(file);
  assert.ok(found, `.github/workflows/${file}`);
  return found;
}

const needsOf = (job: Job): string[] => (job.needs === undefined ? [] : Array.isArray(job.needs) ? job.needs : [job.needs]);
const environmentOf = (job: Job): string | undefined => (typeof job.environment === 'string' ? job.environment : job.environment?.name);

/** Whether a step can push an image: build-push-action with push not false, or a push by hand. */
function pushesImage(step: Step): boolean {
  if (step.uses?.startsWith('docker/build-push-action@')) return String(step.with?.['push'] ?? 'false') !== 'false';
  return /\bdocker (image )?push\b|buildx build[^\n]*--push|imagetools create|\bcrane (push|copy|tag)\b|\bskopeo copy\b/.test(
    step.run ?? '',
  );
}

/** Every job that runs after `name` (directly or through others). */
function after(wf: Workflow, name: string): Set<string> {
  const found = new Set<string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const [other, job] of Object.entries(wf.jobs))
      if (!found.has(other) && needsOf(job).some((n) => n === name || found.has(n))) {
        found.add(other);
        grew = true;
      }
  }
  return found;
}

function stepIndex(job: Job, predicate: (s: Step) => boolean, what: string): number {
  const index = job.steps.findIndex(predicate);
  assert.ok(index >= 0, what);
  return index;
}

describe('release workflows', () => {
  test('no image is pushed in, or after, a job gated by the production environment', () => {
    for (const [file, wf] of workflows) {
      for (const [name, job] of Object.entries(wf.jobs)) {
        if (environmentOf(job) !== 'production') continue;
        for (const gated of [name, ...after(wf, name)])
          assert.deepEqual(
            (wf.jobs[gated]?.steps ?? []).filter(pushesImage).map((s) => s.name ?? s.uses),
            [],
            `${file} job ${gated} runs behind the production gate`,
          );
      }
    }
  });

  test('the only step that pushes a release tag is release.yml, triggered by v* tags, after checking the tag does not exist', () => {
    const pushing = [...workflows].flatMap(([file, wf]) =>
      Object.entries(wf.jobs).flatMap(([job, j]) => j.steps.filter(pushesImage).map((s) => ({ file, job, step: s }))),
    );
    for (const { file, job, step } of pushing) {
      const tags = String(step.with?.['tags'] ?? '');
      if (file === 'release.yml') continue;
      // Elsewhere only per-commit tags: sha-<commit>, never a version, latest or the git ref name.
      assert.match(
        tags,
        /^ghcr\.io\/nhs-pms\/\$\{\{ matrix\.image\.name \}\}:sha-\$\{\{ github\.sha \}\}$/,
        `${file} ${job} pushes ${tags}`,
      );
      assert.equal(step.run, undefined, `${file} ${job}: no hand-made push`);
    }
    const release = workflow('release.yml');
    assert.deepEqual(Object.keys(release.on), ['push']);
    assert.deepEqual(release.on['push'], { tags: ['v*'] });
    const images = release.jobs['images'];
    assert.ok(images);
    const tagStep = stepIndex(images, (s) => s.name === 'Release tag', 'a step computes the release tag');
    const refuse = stepIndex(
      images,
      (s) => /imagetools inspect "\$REF"/.test(s.run ?? '') && /already exists[^\n]*\n\s*exit 1/.test(s.run ?? ''),
      'a step fails when the release tag already exists',
    );
    const build = stepIndex(images, pushesImage, 'a step pushes the image');
    assert.ok(tagStep < refuse && refuse < build, 'the tag is checked before it is pushed');
    assert.equal(images.steps[build]?.with?.['tags'], '${{ steps.tag.outputs.ref }}', 'exactly one tag: the release tag');
    assert.equal(images.steps.filter(pushesImage).length, 1);
    assert.equal(
      (images.steps[refuse] as unknown as Record<string, any>)['env']?.['REF'],
      '${{ steps.tag.outputs.ref }}',
      'the tag checked is the tag pushed',
    );
    // The check and the push must not interleave with another release.
    assert.equal((release as unknown as Record<string, any>)['concurrency']?.['cancel-in-progress'], false);
  });

  test('release.yml reads each digest back from the registry and pins it in the prod overlay through a pull request', () => {
    const release = workflow('release.yml');
    const images = release.jobs['images'];
    assert.ok(images);
    const build = stepIndex(images, pushesImage, 'the push');
    const readBack = stepIndex(
      images,
      (s) => /imagetools inspect "\$REF"[^\n]*\.Manifest/.test(s.run ?? '') && /"\$digest" != "\$BUILT"/.test(s.run ?? ''),
      'a step compares the registry digest with the built one',
    );
    assert.ok(build < readBack);
    const pin = release.jobs['pin-digests'];
    assert.ok(pin);
    assert.deepEqual(needsOf(pin), ['images']);
    assert.equal(environmentOf(pin), undefined, 'pinning deploys nothing');
    const write = stepIndex(
      pin,
      (s) =>
        /yq -i '\(\.images\[\] \| select\(\.name == strenv\(NAME\)\)\)\.digest = strenv\(DIGEST\)' deploy\/overlays\/prod\/kustomization\.yaml/.test(
          s.run ?? '',
        ),
      'a step writes each digest into deploy/overlays/prod/kustomization.yaml',
    );
    const check = stepIndex(
      pin,
      (s) => /kubectl kustomize deploy\/overlays\/prod/.test(s.run ?? '') && /sha256:0\{64\}/.test(s.run ?? ''),
      'a step checks the rendered overlay',
    );
    const pr = stepIndex(pin, (s) => /gh pr create --base main/.test(s.run ?? ''), 'a step opens the pull request');
    assert.ok(write < check && check < pr);
    assert.doesNotMatch(
      pin.steps[pr]?.run ?? '',
      /git push[^\n]*(main|refs\/tags)/,
      'the release branch only: main and prod move by review',
    );
    // Every image the prod overlay names is written by the pin step.
    const kustomization = parse(readFileSync(join(DEPLOY_DIR, 'overlays', 'prod', 'kustomization.yaml'), 'utf8')) as {
      images: Array<{ name: string }>;
    };
    for (const { name } of kustomization.images.filter((i) => i.name.startsWith('ghcr.io/')))
      assert.ok((pin.steps[write]?.run ?? '').includes(`echo "${name} ${name}:`), `${name} is pinned`);
    assert.match(pin.steps[write]?.run ?? '', /select\(\.name == "exporter"\)/, 'the exporter image is resolved too');
  });

  test('deploy.yml: prod moves only in the job gated by the production environment, after it re-checks the approved digests', () => {
    const deploy = workflow('deploy.yml');
    assert.ok(!('tags' in (deploy.on['push'] ?? {})), 'a tag push alone deploys nothing to prod');
    const moving = Object.entries(deploy.jobs).filter(([, j]) => j.steps.some((s) => /refs\/tags\/prod/.test(s.run ?? '')));
    assert.deepEqual(
      moving.map(([name]) => name),
      ['prod'],
    );
    const [, prod] = moving[0] ?? [];
    assert.ok(prod);
    assert.equal(environmentOf(prod), 'production');
    assert.deepEqual(needsOf(prod), ['prod-plan']);
    const plan = deploy.jobs['prod-plan'];
    assert.ok(plan);
    assert.equal(environmentOf(plan), undefined);
    stepIndex(
      plan,
      (s) => /@sha256:0\{64\}/.test(s.run ?? '') && /exit "\$failed"/.test(s.run ?? ''),
      'the plan refuses placeholder digests',
    );
    stepIndex(
      plan,
      (s) => /GITHUB_STEP_SUMMARY/.test(s.run ?? '') && /kubectl kustomize deploy\/overlays\/prod/.test(s.run ?? ''),
      'the plan shows the images',
    );
    const compare = stepIndex(
      prod,
      (s) => /"\$images" != "\$APPROVED"/.test(s.run ?? ''),
      'the gated job compares with the approved images',
    );
    const move = stepIndex(prod, (s) => /refs\/tags\/prod/.test(s.run ?? ''), 'the gated job moves prod');
    assert.ok(compare < move);
    assert.match(
      String(prod.steps[compare] && (prod.steps[compare] as unknown as Record<string, any>)['env']?.['APPROVED']),
      /needs\.prod-plan\.outputs\.images/,
    );
  });

  test('these checks catch what they look for', () => {
    assert.ok(pushesImage({ uses: 'docker/build-push-action@x', with: { push: true } }));
    assert.ok(pushesImage({ uses: 'docker/build-push-action@x', with: { push: "${{ github.ref == 'refs/heads/main' }}" } }));
    assert.ok(!pushesImage({ uses: 'docker/build-push-action@x', with: { push: false } }));
    assert.ok(pushesImage({ run: 'docker push ghcr.io/nhs-pms/pms-backup:0.1.0' }));
    assert.ok(pushesImage({ run: 'docker buildx build . --push -t x' }));
    assert.ok(!pushesImage({ run: 'docker buildx imagetools inspect x' }));
    const wf: Workflow = { on: {}, jobs: { a: { steps: [] }, b: { needs: 'a', steps: [] }, c: { needs: ['b'], steps: [] } } };
    assert.deepEqual([...after(wf, 'a')].sort(), ['b', 'c']);
  });
});
