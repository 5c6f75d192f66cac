#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (npm ci runs the build through "prepare").
import '../dist/cli/pms-backup-entry.js';
