#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (npm ci runs the build through "prepare").
// archive_command's common case (a WAL file already archived ahead) is answered before the CLI loads.
const { answerWalPush } = await import('../dist/cli/wal-push-fast-path.js');
const answered = await answerWalPush(process.argv.slice(2));
if (answered !== undefined) process.exit(answered);
await import('../dist/cli/pms-backup.js');
