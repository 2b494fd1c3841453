// deploy/terraform checked without terraform (it cannot be installed here):
// every .tf file parsed by @cdktf/hcl2json, and the properties the module
// promises asserted on the parsed configuration. The task role's S3 actions
// are compared with the operations the service's S3 client sends, read
// from its source: one missing or one extra fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from '@cdktf/hcl2json';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const moduleDir = join(root, 'deploy', 'terraform', 'modules', 's3uploader');
const exampleDir = join(root, 'deploy', 'terraform', 'example');

// Every block of every .tf file in `dir`, merged by kind, type and name.
async function load(dir) {
  const merged = {};
  const files = readdirSync(dir).filter((f) => f.endsWith('.tf'));
  assert.ok(files.length > 0, `no .tf files in ${dir}`);
  for (const file of files) {
    const parsed = await parse(file, readFileSync(join(dir, file), 'utf8'));
    for (const [kind, byType] of Object.entries(parsed)) {
      merged[kind] ??= {};
      if (Array.isArray(byType)) {
        merged[kind] = [...(Array.isArray(merged[kind]) ? merged[kind] : []), ...byType];
        continue;
      }
      for (const [type, byName] of Object.entries(byType)) {
        if (Array.isArray(byName)) {
          // variable, output, module: blocks by name only
          assert.equal(merged[kind][type], undefined, `${kind}.${type} is defined twice`);
          merged[kind][type] = byName;
          continue;
        }
        merged[kind][type] ??= {};
        for (const [name, blocks] of Object.entries(byName)) {
          assert.equal(merged[kind][type][name], undefined, `${kind}.${type}.${name} is defined twice`);
          merged[kind][type][name] = blocks;
        }
      }
    }
  }
  return merged;
}

const tf = await load(moduleDir);
const example = await load(exampleDir);
const resource = (type, name) => {
  const blocks = tf.resource?.[type]?.[name];
  assert.ok(blocks, `resource ${type}.${name} is missing`);
  return blocks[0];
};
const resourcesOf = (type) => Object.values(tf.resource?.[type] ?? {}).map((b) => b[0]);
const variable = (name) => {
  const v = tf.variable?.[name]?.[0];
  assert.ok(v, `variable ${name} is missing`);
  return v;
};

// The S3 operations the service sends, each with the IAM actions it needs
// (the Service Authorization Reference for Amazon S3).
const actionsOf = {
  PutObject: ['s3:PutObject'],
  CreateMultipartUpload: ['s3:PutObject'],
  UploadPart: ['s3:PutObject'],
  CompleteMultipartUpload: ['s3:PutObject'],
  UploadPartCopy: ['s3:PutObject', 's3:GetObject'],
  GetObject: ['s3:GetObject'],
  HeadObject: ['s3:GetObject'],
  DeleteObject: ['s3:DeleteObject'],
  AbortMultipartUpload: ['s3:AbortMultipartUpload'],
  ListParts: ['s3:ListMultipartUploadParts'],
  ListObjectsV2: ['s3:ListBucket'],
  HeadBucket: ['s3:ListBucket'],
  ListMultipartUploads: ['s3:ListBucketMultipartUploads'],
};
const bucketActions = new Set(['s3:ListBucket', 's3:ListBucketMultipartUploads']);
// Sent only by tests and first runs (S3Store::create_bucket), never by the service.
const notByTheService = new Set(['CreateBucket']);

function operationsInClient() {
  const source = readFileSync(join(root, 'src', 'storage', 's3', 's3_operations.cpp'), 'utf8');
  const found = new Set();
  for (const m of source.matchAll(/call\(\s*\w+\s*,\s*"(\w+)"\s*\)/g)) found.add(m[1]);
  for (const m of source.matchAll(/\.operation\s*=\s*"(\w+)"/g)) found.add(m[1]);
  return found;
}

test('the S3 client sends only operations this test knows, and CreateBucket only from tests', () => {
  const operations = operationsInClient();
  assert.ok(operations.size >= 10, `only ${[...operations]} found: has the client's source moved?`);
  for (const op of operations) {
    assert.ok(op in actionsOf || notByTheService.has(op), `the S3 client sends ${op}: which IAM action does it need?`);
  }
  // create_bucket is declared and defined in storage/s3 and called nowhere else in src/.
  const callers = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(cpp|hpp)$/.test(entry.name) && !path.includes(join('storage', 's3'))) {
        if (/create_bucket\s*\(/.test(readFileSync(path, 'utf8'))) callers.push(path);
      }
    }
  };
  walk(join(root, 'src'));
  assert.deepEqual(callers, [], 'the service itself creates buckets: CreateBucket belongs in the policy');
});

test("the task role's S3 policy grants exactly the client's actions, on exactly the bucket and prefix", () => {
  const needed = new Set();
  for (const op of operationsInClient()) {
    if (notByTheService.has(op)) continue;
    for (const action of actionsOf[op]) needed.add(action);
  }
  const policy = tf.data.aws_iam_policy_document.s3_access[0];
  const granted = new Set();
  for (const statement of policy.statement) {
    assert.notEqual(statement.effect, 'Deny');
    for (const action of statement.actions) {
      assert.ok(!action.includes('*'), `${action}: no wildcards`);
      assert.ok(!granted.has(action), `${action} is granted twice`);
      granted.add(action);
      const onBucket = bucketActions.has(action);
      assert.deepEqual(statement.resources, onBucket ? ['${aws_s3_bucket.objects.arn}'] : ['${aws_s3_bucket.objects.arn}/${var.key_prefix}*'],
        `${action} must be on the ${onBucket ? 'bucket' : 'prefix'} only`);
    }
  }
  assert.deepEqual([...granted].sort(), [...needed].sort());
  const attached = resource('aws_iam_role_policy', 'task_s3');
  assert.equal(attached.role, '${aws_iam_role.task.id}');
  assert.equal(attached.policy, '${data.aws_iam_policy_document.s3_access.json}');
  // Nothing else grants the task role anything.
  const onTask = [...resourcesOf('aws_iam_role_policy'), ...resourcesOf('aws_iam_role_policy_attachment')]
    .filter((r) => String(r.role).includes('aws_iam_role.task.'));
  assert.equal(onTask.length, 1);
});

test('the bucket is private, encrypted, owned by its account and swept of unfinished multipart uploads', () => {
  const block = resource('aws_s3_bucket_public_access_block', 'objects');
  for (const key of ['block_public_acls', 'block_public_policy', 'ignore_public_acls', 'restrict_public_buckets']) {
    assert.equal(block[key], true, key);
  }
  const sse = resource('aws_s3_bucket_server_side_encryption_configuration', 'objects');
  assert.match(sse.rule[0].apply_server_side_encryption_by_default[0].sse_algorithm, /^(AES256|aws:kms)$/);
  assert.equal(resource('aws_s3_bucket_ownership_controls', 'objects').rule[0].object_ownership, 'BucketOwnerEnforced');
  const lifecycle = resource('aws_s3_bucket_lifecycle_configuration', 'objects');
  const abort = lifecycle.rule.find((r) => r.abort_incomplete_multipart_upload);
  assert.ok(abort, 'no rule aborts incomplete multipart uploads');
  assert.equal(abort.status, 'Enabled');
  assert.equal(abort.abort_incomplete_multipart_upload[0].days_after_initiation, '${var.abort_incomplete_multipart_days}');
  assert.ok(variable('abort_incomplete_multipart_days').default > 0);
  // CORS and versioning are there when asked for, and only then.
  assert.equal(resource('aws_s3_bucket_cors_configuration', 'objects').count, '${length(var.cors_origins) > 0 ? 1 : 0}');
  assert.deepEqual(variable('cors_origins').default, []);
  assert.equal(resource('aws_s3_bucket_versioning', 'objects').count, '${var.versioning ? 1 : 0}');
  // Plain HTTP is refused by the bucket's policy.
  const tls = tf.data.aws_iam_policy_document.tls_only[0].statement[0];
  assert.equal(tls.effect, 'Deny');
  assert.equal(tls.condition[0].variable, 'aws:SecureTransport');
});

test('the database is PostgreSQL 15: private, encrypted, TLS forced, backed up, protected, its password in Secrets Manager', () => {
  const db = resource('aws_db_instance', 'metadata');
  assert.equal(db.engine, 'postgres');
  assert.match(String(db.engine_version), /^15(\.|$)/);
  assert.equal(db.storage_encrypted, true);
  assert.equal(db.publicly_accessible, false);
  assert.equal(db.manage_master_user_password, true);
  assert.equal(db.password, undefined, 'no password in the configuration');
  assert.equal(db.deletion_protection, '${var.db_deletion_protection}');
  assert.equal(variable('db_deletion_protection').default, true);
  assert.equal(db.backup_retention_period, '${var.db_backup_retention_days}');
  assert.ok(variable('db_backup_retention_days').default >= 7);
  assert.equal(db.skip_final_snapshot, false);
  const params = resource('aws_db_parameter_group', 'metadata');
  assert.equal(params.family, 'postgres15');
  assert.ok(params.parameter.some((p) => p.name === 'rds.force_ssl' && String(p.value) === '1'), 'rds.force_ssl = 1');
  assert.equal(db.parameter_group_name, '${aws_db_parameter_group.metadata.name}');
  assert.equal(resource('aws_db_subnet_group', 'metadata').subnet_ids, '${var.private_subnet_ids}');
  assert.deepEqual(db.vpc_security_group_ids, ['${aws_security_group.database.id}']);
  // Into the database's security group: PostgreSQL from the service's tasks, nothing else.
  const ingress = resourcesOf('aws_vpc_security_group_ingress_rule')
    .filter((r) => r.security_group_id === '${aws_security_group.database.id}');
  assert.equal(ingress.length, 1);
  assert.equal(ingress[0].referenced_security_group_id, '${aws_security_group.service.id}');
  assert.equal(ingress[0].cidr_ipv4, undefined);
  assert.equal(ingress[0].from_port, 5432);
  assert.equal(ingress[0].to_port, 5432);
});

test('the service runs on Fargate behind a load balancer that checks /readyz, as the task role, with the password from the secret', () => {
  const service = resource('aws_ecs_service', 'service');
  assert.equal(service.launch_type, 'FARGATE');
  assert.equal(service.desired_count, '${var.desired_count}');
  assert.equal(service.network_configuration[0].assign_public_ip, false);
  assert.equal(service.network_configuration[0].subnets, '${var.private_subnet_ids}');
  const task = resource('aws_ecs_task_definition', 'service');
  assert.deepEqual(task.requires_compatibilities, ['FARGATE']);
  assert.equal(task.task_role_arn, '${aws_iam_role.task.arn}');
  const containers = task.container_definitions;
  assert.match(containers, /image\s*=\s*var\.image/);
  assert.match(containers, /name\s*=\s*"PGPASSWORD"/);
  assert.match(containers, /valueFrom\s*=\s*"\$\{aws_db_instance\.metadata\.master_user_secret\[0\]\.secret_arn\}:password::"/);
  assert.match(containers, /command\s*=\s*\["CMD", "s3uploader", "check"\]/, 'the container checks its /readyz');
  assert.doesNotMatch(containers, /AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID/, 'credentials come from the task role');
  const environment = tf.locals.find((l) => l.environment)?.environment;
  assert.ok(environment, 'locals.environment');
  assert.match(environment, /S3UP_STORAGE\s*=\s*"s3:\/\/\$\{aws_s3_bucket\.objects\.bucket\}\/\$\{var\.key_prefix\}"/);
  assert.match(environment, /S3UP_DATABASE\s*=\s*"host=[^"]*sslmode=require"/);
  assert.doesNotMatch(environment, /password/i);
  const target = resource('aws_lb_target_group', 'service');
  assert.equal(target.health_check[0].path, '/readyz');
  assert.equal(target.target_type, 'ip');
  const listener = resource('aws_lb_listener', 'https');
  assert.equal(listener.protocol, 'HTTPS');
  assert.equal(listener.certificate_arn, '${var.certificate_arn}');
});

test('the example root gives the module every variable that has no default', () => {
  const call = example.module.s3uploader[0];
  assert.equal(call.source, '../modules/s3uploader');
  for (const [name, [v]] of Object.entries(tf.variable)) {
    if (!('default' in v)) assert.ok(name in call, `the example does not set ${name}`);
  }
  for (const name of Object.keys(call)) {
    if (['source', 'providers', 'depends_on'].includes(name)) continue;
    assert.ok(name in tf.variable, `the example sets ${name}, which the module does not have`);
  }
});
