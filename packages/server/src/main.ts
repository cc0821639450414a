#!/usr/bin/env node
// `npm start`: the bus with its configuration from the environment and flags.
import { serveMain } from './serve.js';

serveMain(process.argv.slice(2));
