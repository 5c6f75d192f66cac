import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterData } from './cluster-objects.js';
import { containerRunArgs } from './podman-args.js';
import { planPod } from './pod-plan.js';
import { memoryBytes } from './quantity.js';

const objects = [
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' }, data: { host: 'db.ns.svc', 'app.conf': 'x=1\n' } },
  { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'sec' }, data: { password: Buffer.from('s3cret').toString('base64') } },
];

const template = {
  owner: 'CronJob/job',
  namespace: 'ns',
  labels: { app: 'a' },
  annotations: {},
  claimTemplates: [],
  spec: {
    securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001 },
    initContainers: [{ name: 'side', image: 'ghcr.io/x/app:1', restartPolicy: 'Always', securityContext: { runAsUser: 10002 } }],
    containers: [
      {
        name: 'main',
        image: 'ghcr.io/x/app:1',
        command: ['app', 'run'],
        env: [
          { name: 'HOST', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'host' } } },
          { name: 'URL', value: 'http://$(HOST):80/$$x' },
          { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        ],
        resources: { limits: { memory: '256Mi' } },
        securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        volumeMounts: [
          { name: 'conf', mountPath: '/etc/app/app.conf', subPath: 'app.conf', readOnly: true },
          { name: 'secret', mountPath: '/run/secrets/app', readOnly: true },
          { name: 'tmp', mountPath: '/tmp' },
        ],
      },
    ],
    volumes: [
      { name: 'conf', configMap: { name: 'cfg' } },
      { name: 'secret', secret: { secretName: 'sec', defaultMode: 0o440, items: [{ key: 'password', path: 'password' }] } },
      { name: 'tmp', emptyDir: {} },
    ],
  },
};

const ctx = { podName: 'p', data: clusterData(objects), images: new Map([['ghcr.io/x/app', 'localhost/app:dev']]) };

test('a pod template becomes a plan with every security field, env resolved and expanded, and volumes with their modes', () => {
  const pod = planPod(template, ctx);
  const [side, main] = pod.containers;
  assert.equal(side?.role, 'sidecar');
  assert.equal(side?.user, 10002);
  assert.equal(main?.image, 'localhost/app:dev');
  assert.deepEqual(main?.env, [
    ['HOST', 'db.ns.svc'],
    ['URL', 'http://db.ns.svc:80/$x'],
    ['POD', 'p'],
  ]);
  assert.equal(main?.memoryLimitBytes, 256 * 2 ** 20);
  const secret = pod.volumes.find((v) => v.name === 'secret');
  assert.deepEqual(secret?.kind === 'files' ? secret.files.map((f) => [f.path, f.mode, f.content.toString()]) : [], [
    ['password', 0o440, 's3cret'],
  ]);
  const args = containerRunArgs(
    pod,
    main as NonNullable<typeof main>,
    new Map([
      ['conf', '/h/conf'],
      ['secret', '/h/secret'],
      ['tmp', '/h/tmp'],
    ]),
    '/h/env',
  );
  const text = args.join(' ');
  for (const expected of [
    '--user 10001:10001',
    '--group-add 10001',
    '--read-only --read-only-tmpfs=false',
    '--cap-drop ALL',
    '--security-opt no-new-privileges',
    '--memory 268435456',
  ])
    assert.ok(text.includes(expected), `${expected} in ${text}`);
  assert.ok(text.includes('--volume /h/conf/app.conf:/etc/app/app.conf:ro'));
  assert.ok(text.includes('--volume /h/tmp:/tmp:rw'));
  assert.deepEqual(args.slice(-3), ['--entrypoint', '["app","run"]', 'localhost/app:dev']);
});

test('what cannot be translated is refused, not ignored', () => {
  const withHostPath = {
    ...template,
    spec: { ...template.spec, volumes: [...template.spec.volumes, { name: 'h', hostPath: { path: '/' } }] },
  };
  assert.throws(() => planPod(withHostPath, ctx), /hostPath is not translated/);
  const rootUser = { ...template, spec: { ...template.spec, securityContext: { runAsNonRoot: true, runAsUser: 0 } } };
  assert.throws(() => planPod(rootUser, ctx), /runAsNonRoot/);
  const missingKey = {
    ...template,
    spec: { ...template.spec, volumes: [{ name: 'secret', secret: { secretName: 'sec', items: [{ key: 'nope', path: 'x' }] } }] },
  };
  assert.throws(() => planPod(missingKey, ctx), /no key nope/);
});

test('memory quantities', () => {
  assert.equal(memoryBytes('1Gi'), 2 ** 30);
  assert.equal(memoryBytes('128M'), 128e6);
  assert.throws(() => memoryBytes('1 gig'));
});

test("a StatefulSet member: the downward API's name, namespace and pod IP, its claim by member name, and Memory emptyDirs sized", () => {
  const member = {
    ...template,
    owner: 'StatefulSet/db',
    claimTemplates: ['data'],
    spec: {
      ...template.spec,
      initContainers: [],
      containers: [
        {
          name: 'db',
          image: 'ghcr.io/x/app@sha256:0000',
          env: [
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
            { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          ],
          volumeMounts: [{ name: 'run', mountPath: '/run/app' }],
        },
      ],
      volumes: [{ name: 'run', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }],
    },
  };
  const pod = planPod(member, { ...ctx, podName: 'harness-db-1', metadataName: 'db-1', podIp: '10.0.0.7' });
  assert.equal(pod.name, 'harness-db-1');
  assert.deepEqual(pod.containers[0]?.env, [
    ['POD_NAME', 'db-1'],
    ['POD_NAMESPACE', 'ns'],
    ['POD_IP', '10.0.0.7'],
  ]);
  assert.deepEqual(pod.volumes, [
    { name: 'run', kind: 'emptyDir', memoryBytes: 2 ** 20 },
    { name: 'data', kind: 'claim', claim: 'data-db-1' },
  ]);
  // Without an address to give, status.podIP is refused rather than left empty.
  assert.throws(() => planPod(member, ctx), /fieldRef status.podIP is not translated/);
  const unsized = { ...member, spec: { ...member.spec, volumes: [{ name: 'run', emptyDir: { medium: 'Memory' } }] } };
  assert.throws(() => planPod(unsized, ctx), /Memory emptyDir without sizeLimit/);
});
