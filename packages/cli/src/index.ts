export { runCli } from './cli.js';
export { splitWords } from './words.js';
export { runCommand, stdoutResult, type ExecSpec, type ExecOutcome } from './exec.js';
