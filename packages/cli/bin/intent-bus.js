#!/usr/bin/env node
// The installed command. A source file (not the build output) so that `npm ci` can link
// it before the build runs; it loads the built CLI.
import '../dist/main.js';
