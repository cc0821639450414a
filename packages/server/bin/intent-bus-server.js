#!/usr/bin/env node
// `intent-bus-server`: the bus alone (the CLI's `intent-bus serve` does the same).
import '../dist/main.js';
