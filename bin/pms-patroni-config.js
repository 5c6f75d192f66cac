#!/usr/bin/env node
// Thin launcher: the compiled entry point lives in dist/ (see src/cli/pms-patroni-config.ts).
import '../dist/cli/pms-patroni-config.js';
